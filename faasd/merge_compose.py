#!/usr/bin/env python3
"""Add MinIO to faasd's core services and lengthen the timeouts a Pi needs for a 60 s clip.

Run by install.sh (as root) on each Pi:

    python3 merge_compose.py --compose /var/lib/faasd/docker-compose.yaml \
        --secrets /var/lib/faasd/secrets [--volumes URL_OR_PATH] [--index-gateway HOST:PORT]

Idempotent: running it again replaces the minio service and re-applies the timeouts. Needs only
python3 and PyYAML (`apt-get install python3-yaml`). The output holds secrets: mode 0600.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
FRAGMENT = HERE / "docker-compose.minio.yaml"

# Synchronous calls go gateway -> function; asynchronous ones (MinIO's webhooks) go
# gateway -> NATS -> queue-worker -> gateway -> function, so both limits matter.
GATEWAY_TIMEOUTS = {"read_timeout": "305s", "write_timeout": "305s", "upstream_timeout": "300s"}
QUEUE_WORKER = {"ack_wait": "310s", "max_inflight": "1"}
SECRET_FILES = {
    "MINIO_ROOT_USER": "minio-root-user",
    "MINIO_ROOT_PASSWORD": "minio-root-password",
    "HOMELABPI_TOKEN": "homelabpi-token",
}


def _set_env(service: dict, values: dict[str, str]) -> None:
    env = service.get("environment") or []
    if isinstance(env, dict):
        env.update(values)
    else:
        keep = [e for e in env if str(e).split("=", 1)[0] not in values]
        env = keep + [f"{k}={v}" for k, v in values.items()]
    service["environment"] = env


def render_fragment(values: dict[str, str]) -> dict:
    text = FRAGMENT.read_text()
    for name, value in values.items():
        if any(c in value for c in "\n\r\"'\\") or not value:
            raise ValueError(f"{name} is empty or contains quotes, backslashes or newlines")
        text = text.replace(f"@{name}@", value)
    if "@" in "".join(line.split("#", 1)[0] for line in text.splitlines()):
        raise ValueError("a placeholder in docker-compose.minio.yaml was left unfilled")
    return yaml.safe_load(text)


def merge(compose: dict, fragment: dict) -> dict:
    services = compose.setdefault("services", {})
    for required in ("gateway", "queue-worker"):
        if required not in services:
            raise ValueError(f"not a faasd docker-compose.yaml: no {required!r} service")
    services.update(fragment["services"])
    _set_env(services["gateway"], GATEWAY_TIMEOUTS)
    _set_env(services["queue-worker"], QUEUE_WORKER)
    return compose


def read_secrets(secrets_dir: Path) -> dict[str, str]:
    out = {}
    for name, filename in SECRET_FILES.items():
        path = secrets_dir / filename
        try:
            out[name] = path.read_text().strip()
        except OSError as exc:
            raise SystemExit(f"missing secret file {path} ({exc}); install.sh creates it") from exc
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compose", default="/var/lib/faasd/docker-compose.yaml", type=Path)
    ap.add_argument("--secrets", default="/var/lib/faasd/secrets", type=Path)
    ap.add_argument("--volumes", default="/minio/data",
                    help="MinIO drive(s): /minio/data on one Pi; for several Pis e.g. "
                         "http://192.168.1.{21...24}:9000/minio/data (same on every Pi)")
    ap.add_argument("--index-gateway", default="gateway:8080",
                    help="host:port of the gateway on the Pi that runs the index function")
    ap.add_argument("--output", type=Path, help="write here instead of over --compose")
    args = ap.parse_args(argv)

    values = read_secrets(args.secrets)
    values["MINIO_VOLUMES"] = args.volumes
    values["INDEX_GATEWAY"] = args.index_gateway
    compose = yaml.safe_load(args.compose.read_text())
    merged = merge(compose, render_fragment(values))
    out = args.output or args.compose
    tmp = out.with_name(out.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(merged, f, sort_keys=False)
    os.replace(tmp, out)
    print(f"wrote {out}: minio service added, gateway/queue-worker timeouts set", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
