"""Our faasd files run through models of what faasd, runc and OpenFaaS CE really do with them.

The models (tests/cluster/faasd_model.py) cite the upstream source of each behaviour. These tests
failed on the files as they were: MinIO's `command` started with `server` (runc cannot exec it),
and nothing raised faasd-provider's 60 s `service_timeout`, so every call was cut at 60 s.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml
from faasd_model import (
    FAASD_PROVIDER_UNIT,
    MINIO_IMAGE,
    ExecFailed,
    call_deadline,
    container_argv,
    exec_path,
    go_duration,
    provider_timeout,
    systemd_environment,
)

ROOT = Path(__file__).resolve().parents[2]
FAASD = ROOT / "faasd"

# openfaas/faasd docker-compose.yaml: the gateway and queue-worker as faasd ships them.
FAASD_COMPOSE = {"version": "3.7", "services": {
    "nats": {"image": "docker.io/library/nats-streaming:0.11.2",
             "command": ["/nats-streaming-server", "-m", "8222", "--store=memory",
                         "--cluster_id=faas-cluster"]},
    "gateway": {"image": "ghcr.io/openfaas/gateway:0.20.7", "environment": [
        "basic_auth=true", "functions_provider_url=http://faasd-provider:8081/",
        "direct_functions=false", "read_timeout=60s", "write_timeout=60s",
        "upstream_timeout=65s", "faas_nats_address=nats", "faas_nats_port=4222"]},
    "queue-worker": {"image": "docker.io/openfaas/queue-worker:0.11.2", "environment": [
        "faas_nats_address=nats", "faas_nats_port=4222", "gateway_invoke=true",
        "faas_gateway_address=gateway", "ack_wait=5m5s", "max_inflight=1"]},
}}


def _merge_module():
    spec = importlib.util.spec_from_file_location("merge_compose", FAASD / "merge_compose.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def secrets_dir(tmp_path):
    d = tmp_path / "secrets"
    d.mkdir()
    for name, value in [("minio-root-user", "admin"), ("minio-root-password", "pw" * 10),
                        ("homelabpi-token", "tok123")]:
        (d / name).write_text(value + "\n")
    return d


def _longest_exec_timeout() -> float:
    stack = yaml.safe_load((ROOT / "stack.yml").read_text())
    return max(go_duration(fn["environment"]["exec_timeout"], 0)
               for fn in stack["functions"].values())


def test_model_reproduces_faasd_own_nats_service():
    # Sanity of the model: faasd's NATS service names its binary by absolute path.
    from faasd_model import Image

    nats = Image(entrypoint=("/nats-streaming-server",), cmd=(), path="/usr/bin",
                 files=frozenset({"/nats-streaming-server"}))
    argv = container_argv(nats, FAASD_COMPOSE["services"]["nats"])
    assert exec_path(nats, argv) == "/nats-streaming-server"
    with pytest.raises(ExecFailed):
        exec_path(MINIO_IMAGE, ["server", "/data"])


def test_minio_core_service_execs_under_faasd(tmp_path, secrets_dir):
    merge = _merge_module()
    compose = tmp_path / "docker-compose.yaml"
    compose.write_text(yaml.safe_dump(FAASD_COMPOSE))
    assert merge.main(["--compose", str(compose), "--secrets", str(secrets_dir),
                       "--provider-dropin", str(tmp_path / "dropin.conf")]) == 0
    svc = yaml.safe_load(compose.read_text())["services"]["minio"]
    argv = container_argv(MINIO_IMAGE, svc)
    # runc must find argv[0]; `server` alone is looked up on PATH and is not there.
    exec_path(MINIO_IMAGE, argv)
    # The entrypoint script execs `minio` with the rest: a server on the volume, console :9001.
    assert argv[1] == "minio" and argv[2] == "server", argv
    assert argv[3] == "/minio/data"
    assert argv[argv.index("--console-address") + 1] == ":9001"


@pytest.mark.parametrize("with_minio", [True, False])
def test_no_hop_cuts_a_call_before_the_function_timeout(tmp_path, secrets_dir, with_minio):
    merge = _merge_module()
    compose = tmp_path / "docker-compose.yaml"
    compose.write_text(yaml.safe_dump(FAASD_COMPOSE))
    dropin = tmp_path / "faasd-provider.service.d" / "homelabpi.conf"
    args = ["--compose", str(compose), "--secrets", str(secrets_dir),
            "--provider-dropin", str(dropin)]
    assert merge.main(args + ([] if with_minio else ["--no-minio"])) == 0
    merged = yaml.safe_load(compose.read_text())
    assert ("minio" in merged["services"]) is with_minio
    env = systemd_environment(FAASD_PROVIDER_UNIT, dropin.read_text())
    assert provider_timeout(env) > _longest_exec_timeout()
    assert call_deadline(merged, env) >= _longest_exec_timeout()


def test_unmerged_faasd_cuts_calls_at_60s():
    # What a Pi had before: faasd-provider's default, whatever the gateway says.
    env = systemd_environment(FAASD_PROVIDER_UNIT)
    assert provider_timeout(env) == 60
    assert call_deadline(FAASD_COMPOSE, env) == 60 < _longest_exec_timeout()


def _unconditional_lines(script: str) -> list[str]:
    """Lines of a shell script outside any `if` block (top-level flow only)."""
    depth, out = 0, []
    for raw in script.splitlines():
        line = raw.split("#", 1)[0].strip()
        if re.match(r"^if\b", line) and not re.search(r"\bfi$", line):
            depth += 1
        elif line == "fi":
            depth -= 1
        elif depth == 0 and line:
            out.append(line)
    return out


def test_install_applies_the_timeouts_on_every_path():
    top = " ".join(_unconditional_lines((FAASD / "install.sh").read_text()))
    assert "merge_compose.py" in top, "install.sh must run merge_compose.py with or without MinIO"
    assert "--provider-dropin" in top and "systemctl daemon-reload" in top



# Resident memory of what else runs on a Pi beside the functions, in MiB. Measured figures are
# not possible here (no faasd), so these are deliberately generous estimates: the OS with
# firmware/GPU split, containerd + faasd + faasd-provider, and the core services in faasd's
# docker-compose.yaml plus ours (MinIO with a small drive, cron-connector). docs/cluster.md.
CORE_MIB = {"os": 450, "containerd+faasd+provider": 200, "gateway": 40, "nats": 30,
            "queue-worker": 20, "prometheus": 120, "basic-auth": 15, "cron-connector": 20,
            "minio": 600}
PI_MIB = 4 * 1024


def _mebibytes(value: str) -> float:
    m = re.fullmatch(r"(\d+)(Mi|Gi)", value)
    assert m, value
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


def test_function_limits_fit_a_4gb_pi_with_minio_and_faasd():
    stack = yaml.safe_load((ROOT / "stack.yml").read_text())
    limits = {n: _mebibytes(fn["limits"]["memory"]) for n, fn in stack["functions"].items()}
    total = sum(limits.values()) + sum(CORE_MIB.values())
    assert total <= PI_MIB, f"{total} MiB > {PI_MIB}: {limits} + {CORE_MIB}"
    for name, fn in stack["functions"].items():
        assert _mebibytes(fn["requests"]["memory"]) <= limits[name]
