"""What faasd and OpenFaaS CE do with our files, encoded from their sources (not from our docs).

Each function names the upstream file it models. They are deliberately unkind: where the real
component ignores a setting, drops a message or refuses a deploy, so do these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


def go_duration(value: str | int | None, default: float) -> float:
    """faas-provider `types.ParseIntOrDurationValue`: a bare integer is seconds, else a Go
    duration; anything unparsable (or unset) falls back to the default."""
    if value is None or value == "":
        return default
    text = str(value)
    if text.isdigit():
        return float(text)
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(h|ms|m|s)", text):
        if m.start() != pos:
            return default
        total += float(m.group(1)) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and pos else default


@dataclass(frozen=True)
class Image:
    """The parts of an OCI image config runc uses to start a process."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    path: str
    files: frozenset[str] = field(default_factory=frozenset)


# quay.io/minio/minio (minio/minio Dockerfile.release): ENTRYPOINT
# ["/usr/bin/docker-entrypoint.sh"], CMD ["minio"]; the script prepends `minio` when the first
# argument is not `minio` and execs it through PATH. Where the `minio` binary itself lives has
# moved between releases (/opt/bin, /usr/bin), so only the entrypoint script is relied upon.
MINIO_IMAGE = Image(
    entrypoint=("/usr/bin/docker-entrypoint.sh",), cmd=("minio",),
    path="/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    files=frozenset({"/usr/bin/docker-entrypoint.sh", "/usr/bin/verify-minio.sh"}))


def container_argv(image: Image, service: dict) -> list[str]:
    """The process faasd starts for a compose service.

    openfaas/faasd pkg/supervisor.go: the spec is built with `oci.WithImageConfig(image)` (argv =
    ENTRYPOINT + CMD) and then `withOCIArgs(svc.Args)`, i.e. `oci.WithProcessArgs(args...)`,
    which REPLACES the whole argv; pkg/supervisor.go `ParseCompose` fills `Args` from the
    service's `command`. So `command` bypasses the image's ENTRYPOINT, unlike Docker Compose.
    """
    command = service.get("command")
    if isinstance(command, str):
        command = command.split()
    if command:
        return [str(a) for a in command]
    return list(image.entrypoint) + list(image.cmd)


class ExecFailed(RuntimeError):
    pass


def exec_path(image: Image, argv: list[str]) -> str:
    """runc (libcontainer `standard_init_linux.go`): `exec.LookPath(args[0])` in the container,
    then execve; a name not found on PATH fails the task start, and `faasd up` stops there."""
    if not argv:
        raise ExecFailed("no process args")
    first = argv[0]
    if first.startswith("/"):
        if first not in image.files:
            raise ExecFailed(f"exec: {first!r}: no such file or directory")
        return first
    for directory in image.path.split(":"):
        candidate = f"{directory.rstrip('/')}/{first}"
        if candidate in image.files:
            return candidate
    raise ExecFailed(f'exec: "{first}": executable file not found in $PATH')


def provider_timeout(unit_environment: dict[str, str]) -> float:
    """openfaas/faasd pkg/provider/config/read.go `ReadFromEnv`: the provider's HTTP read and
    write timeouts both come from `service_timeout`, default 60 s. The gateway proxies every
    function call through faasd-provider (`functions_provider_url`, `direct_functions=false` in
    faasd's docker-compose.yaml), so this caps every call, sync or async."""
    return go_duration(unit_environment.get("service_timeout"), 60.0)


def systemd_environment(*unit_texts: str) -> dict[str, str]:
    """`Environment=` lines of a unit and its drop-ins, later files overriding earlier ones."""
    env: dict[str, str] = {}
    for text in unit_texts:
        for m in re.finditer(r'^Environment=(?:"([^"]*)"|(\S+))\s*$', text, re.M):
            name, _, value = (m.group(1) or m.group(2)).partition("=")
            env[name] = value
    return env


# openfaas/faasd hack/faasd-provider.service: what install.sh of faasd writes.
FAASD_PROVIDER_UNIT = """[Unit]
Description=faasd-provider

[Service]
MemoryLimit=500M
Environment="secret_mount_path=/var/lib/faasd/secrets"
Environment="basic_auth=true"
ExecStart=/usr/local/bin/faasd provider
"""


def call_deadline(compose: dict, provider_env: dict[str, str]) -> float:
    """The longest a call through the gateway can run before some hop cuts it: the gateway's
    `upstream_timeout` (openfaas/faas gateway/types/readconfig.go, default 60 s when unparsable)
    and the provider's `service_timeout`."""
    gw = dict(str(e).split("=", 1) for e in compose["services"]["gateway"]["environment"])
    return min(go_duration(gw.get("upstream_timeout"), 60.0), provider_timeout(provider_env))


def queue_worker_delivers(status: int) -> bool:
    """openfaas/nats-queue-worker main.go `messageHandler`: the function is called once; whatever
    the status (or a dial error, reported as 503) the message is finished and acked. OpenFaaS CE
    has no retry; `max_inflight` is passed to NATS but CE's gateway handles one at a time."""
    return 200 <= status < 300


def deploy_secrets_ok(requested: list[str], existing: set[str]) -> str | None:
    """openfaas/faasd pkg/provider/handlers/deploy.go `validateSecrets`: a deploy naming a secret
    that is not in /var/lib/faasd/secrets/openfaas-fn is refused with an error (faas-cli prints
    it and the function is not created). Returns that error, or None."""
    for name in requested:
        if name not in existing:
            return f"unable to find secret: {name}"
    return None
