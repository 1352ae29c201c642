#!/usr/bin/env python3
"""Add MinIO and cron-connector to faasd's core services and lengthen every call timeout.

Run by install.sh (as root) on each Pi, with or without MinIO:

    python3 merge_compose.py --compose /var/lib/faasd/docker-compose.yaml \
        --secrets /var/lib/faasd/secrets [--volumes URL_OR_PATH] [--index-gateway HOST:PORT] \
        [--no-minio] [--provider-dropin /etc/systemd/system/faasd-provider.service.d/homelabpi.conf]

A call passes three timeouts: the gateway's, the queue-worker's `ack_wait` (async calls) and
faasd-provider's `service_timeout` (openfaas/faasd pkg/provider/config/read.go, default 60 s),
because the gateway proxies every call through the provider. The provider is a systemd unit,
not a compose service, so its timeout goes into a drop-in (then `systemctl daemon-reload`).

Idempotent: running it again replaces the added services and re-applies the timeouts. Needs only
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
# max_inflight is left alone: OpenFaaS CE's queue-worker runs one call at a time whatever it says.
QUEUE_WORKER = {"ack_wait": "310s"}
PROVIDER_TIMEOUT = "305s"
PROVIDER_DROPIN = "/etc/systemd/system/faasd-provider.service.d/homelabpi.conf"
# openfaas/cron-connector: invokes functions annotated `topic: cron-function` on their
# `schedule` through the gateway (here: the reconciler, stack.yml). Its README's faasd example
# runs it as a core service with the gateway's basic-auth secrets mounted.
CRON_CONNECTOR = {
    # The tag the README gives; pin a digest from `ctr images ls` once pulled if you prefer.
    "image": "ghcr.io/openfaas/cron-connector:latest",
    "environment": ["gateway_url=http://gateway:8080", "basic_auth=true",
                    "secret_mount_path=/run/secrets"],
    "volumes": [
        {"type": "bind", "source": "./secrets/basic-auth-password",
         "target": "/run/secrets/basic-auth-password"},
        {"type": "bind", "source": "./secrets/basic-auth-user",
         "target": "/run/secrets/basic-auth-user"},
    ],
    "cap_add": ["CAP_NET_RAW"],
    "depends_on": ["gateway"],
}
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


def merge(compose: dict, fragment: dict | None) -> dict:
    """faasd's compose with our services added (MinIO only when `fragment` is given)."""
    services = compose.setdefault("services", {})
    for required in ("gateway", "queue-worker"):
        if required not in services:
            raise ValueError(f"not a faasd docker-compose.yaml: no {required!r} service")
    if fragment is not None:
        services.update(fragment["services"])
    services["cron-connector"] = CRON_CONNECTOR
    _set_env(services["gateway"], GATEWAY_TIMEOUTS)
    _set_env(services["queue-worker"], QUEUE_WORKER)
    return compose


def write_provider_dropin(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Written by HomeLabPi faasd/merge_compose.py: calls may run 300 s.\n"
                    f'[Service]\nEnvironment="service_timeout={PROVIDER_TIMEOUT}"\n')
    print(f"wrote {path}: faasd-provider service_timeout={PROVIDER_TIMEOUT} "
          "(systemctl daemon-reload)", file=sys.stderr)


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
    ap.add_argument("--no-minio", action="store_true",
                    help="timeouts and cron-connector only (MinIO runs elsewhere)")
    ap.add_argument("--provider-dropin", type=Path,
                    help=f"write the systemd drop-in that sets faasd-provider's service_timeout "
                         f"here (install.sh: {PROVIDER_DROPIN})")
    args = ap.parse_args(argv)

    fragment = None
    if not args.no_minio:
        values = read_secrets(args.secrets)
        values["MINIO_VOLUMES"] = args.volumes
        values["INDEX_GATEWAY"] = args.index_gateway
        fragment = render_fragment(values)
    compose = yaml.safe_load(args.compose.read_text())
    merged = merge(compose, fragment)
    if args.provider_dropin:
        write_provider_dropin(args.provider_dropin)
    out = args.output or args.compose
    tmp = out.with_name(out.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(merged, f, sort_keys=False)
    os.replace(tmp, out)
    added = "cron-connector" if args.no_minio else "minio and cron-connector"
    print(f"wrote {out}: {added} added, gateway/queue-worker timeouts set", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
