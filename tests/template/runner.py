"""Build a function's context the way faas-cli does and serve it with the template entry point.

`faas-cli build` (go-sdk `builder.CreateBuildContext`) makes `build/<fn>/` from the template
directory, overlays the handler directory into `function/` (skipping `build` and `template`), then
copies every `configuration.copy` path to `function/<path>`. The python3-flask Dockerfile adds
`function/__init__.py`, runs `python index.py` from the context root, and the function's
`environment` from stack.yml is its process environment. `FunctionProcess` reproduces that layout
and runs each function as its own process, so tests exercise the imports and environment a built
image would have (not the test process's).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_stack(path: Path = ROOT / "stack.yml") -> dict:
    return yaml.safe_load(path.read_text())


def build_context(name: str, dest: Path, stack_path: Path = ROOT / "stack.yml") -> Path:
    """`dest/<name>/` laid out as faas-cli lays out `build/<name>/` for python3-flask."""
    stack = load_stack(stack_path)
    fn = stack["functions"][name]
    base = stack_path.parent
    ctx = dest / name
    if ctx.exists():
        shutil.rmtree(ctx)
    (ctx / "function").mkdir(parents=True)
    shutil.copy(HERE / "index.py", ctx / "index.py")
    handler_dir = (base / fn["handler"]).resolve()
    for entry in handler_dir.iterdir():
        if entry.name in ("build", "template", "__pycache__"):
            continue
        target = ctx / "function" / entry.name
        if entry.is_dir():
            shutil.copytree(entry, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(entry, target)
    for extra in stack.get("configuration", {}).get("copy", []):
        src = (base / extra).resolve()
        if not str(src).startswith(str(base.resolve())) or src == base.resolve():
            raise ValueError(f"copy path {extra!r} is outside the stack's directory")
        rel = os.path.normpath(extra)
        target = ctx / "function" / rel
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"),
                            dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)
    (ctx / "function" / "__init__.py").touch()
    return ctx


@dataclass
class FunctionProcess:
    """One function served on a loopback port by its own Python process."""

    name: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    stack_path: Path = ROOT / "stack.yml"
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> FunctionProcess:
        ctx = build_context(self.name, self.workdir / "build", self.stack_path)
        secrets_dir = self.workdir / f"secrets-{self.name}-{id(self)}"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        for key, value in self.secrets.items():
            (secrets_dir / key).write_text(value)
        fn = load_stack(self.stack_path)["functions"][self.name]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HOMELABPI_", "PYTHONPATH", "AWS_"))}
        # The image's /home/app is the build context here (PYTHONPATH=/home/app/function).
        env.update({str(k): str(v).replace("/home/app", str(ctx))
                    for k, v in (fn.get("environment") or {}).items()})
        env.update(self.env)
        env["HOMELABPI_SECRETS_DIR"] = str(secrets_dir)  # /var/openfaas/secrets in a container
        self.port = self.port or free_port()
        env["PORT"] = str(self.port)
        self.log_path = self.workdir / f"{self.name}-{self.port}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([sys.executable, "index.py"], cwd=ctx, env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   f"{self.log()}")
            try:
                # 503 while the handler loads its models (homelabpi.functions.flask_handle).
                if requests.head(self.url, timeout=1).status_code != 503:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not start within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
