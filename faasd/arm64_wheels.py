#!/usr/bin/env python3
"""Can each function's image be built for a Pi, CUDA-free and small? Resolve and measure.

For every `functions/*/requirements.txt` (read as it is, whoever last changed it) this resolves
the full dependency tree the way the python3-flask-debian template's `pip install -r` would on
a Pi (linux/arm64, CPython 3.12, manylinux_2_28_aarch64), wheels only: an sdist would need a
compiler and hours on a Pi, and a missing arm64 wheel is exactly what this is here to find.

    python faasd/arm64_wheels.py            # all functions; exit 1 on CUDA, no wheel or > 1 GB
    python faasd/arm64_wheels.py index      # one function

It fails on any CUDA package (nvidia-*, triton, cuda-*, a +cu torch): PyPI's aarch64 torch is
the CUDA build. Sizes: each wheel is downloaded (clean sets only) and its unpacked size summed,
plus an estimate of the template's base layers. Needs the package index (the machine's pip
configuration); without it every function is reported as skipped, with pip's reason.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# pip takes `--platform` literally (no older manylinux tags implied), so list every glibc a
# bookworm (glibc 2.36) image accepts from manylinux2014 up to 2_28, the newest we target.
_GLIBC = [f"manylinux_2_{minor}_aarch64" for minor in range(28, 16, -1)]
PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
            *[a for tag in [*_GLIBC, "manylinux2014_aarch64"] for a in ("--platform", tag)]]
CUDA = re.compile(r"^(nvidia-.*|triton|cuda-.*|cupy.*|pytorch-triton.*)$")
# python:3.12-slim-bookworm arm64 (~150 MB unpacked) + the template's `apt-get install gcc make`
# (~180 MB) + of-watchdog (~10 MB): an estimate, not a measurement; the wheels are measured.
BASE_IMAGE_MB = 340
BUDGET_MB = 1024
# The one sdist allowed, with why: Vosk requires `srt` (for its own subtitle writer, which
# HomeLabPi does not call), and srt publishes no wheel at all. It is one pure-Python module, so
# pip on the Pi builds it in a second without a compiler. The check builds it here the same way
# and fails unless the result is a pure `py3-none-any` wheel, then resolves everything else
# wheels-only as before.
PURE_SDISTS = {"srt": "Vosk's dependency; one pure-Python module, no wheel published"}


@dataclass
class Resolution:
    function: str
    packages: list[tuple[str, str]] = field(default_factory=list)  # (name, version)
    cuda: list[str] = field(default_factory=list)
    wheels_mb: float = 0.0
    unpacked_mb: float = 0.0
    skipped: str = ""
    error: str = ""
    built: list[str] = field(default_factory=list)  # pure-Python wheels built from PURE_SDISTS

    @property
    def image_mb(self) -> float:
        return BASE_IMAGE_MB + self.unpacked_mb

    @property
    def ok(self) -> bool:
        return not (self.cuda or self.error) and (self.skipped or self.image_mb <= BUDGET_MB)


def cuda_packages(packages: list[tuple[str, str]]) -> list[str]:
    """The CUDA builds among resolved (name, version) pairs."""
    bad = []
    for name, version in packages:
        norm = re.sub(r"[-_.]+", "-", name.lower())
        if CUDA.match(norm) or (norm == "torch" and re.search(r"\+cu\d", version)):
            bad.append(f"{norm}=={version}")
    return bad


def _pip(args: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    # Local find-links/indexes the machine's pip.conf names may be absent: noise, not news.
    proc.stderr = "\n".join(ln for ln in proc.stderr.splitlines()
                             if "is ignored: it is neither" not in ln)
    return proc


def _unreachable(stderr: str) -> bool:
    return bool(re.search(r"NewConnectionError|Max retries exceeded|Temporary failure in name "
                          r"resolution|Network is unreachable|ProxyError", stderr))


def build_pure(house: Path) -> str:
    """Build PURE_SDISTS into `house` as the Pi would; '' or what went wrong."""
    proc = _pip(["wheel", "--quiet", "--no-deps", "--no-binary=:all:", "-w", str(house),
                 *PURE_SDISTS])
    if proc.returncode != 0:
        return "could not build " + ", ".join(PURE_SDISTS) + ": " + proc.stderr.strip()[-300:]
    impure = [w.name for w in house.glob("*.whl") if not w.name.endswith("-none-any.whl")]
    if impure:
        return f"not pure Python, would need a compiler on the Pi: {', '.join(impure)}"
    return ""


def resolve(function: str, requirements: Path, measure: bool = True) -> Resolution:
    res = Resolution(function)
    with tempfile.TemporaryDirectory(prefix=f"arm64-{function}-") as tmp:
        report = Path(tmp) / "report.json"
        house = Path(tmp) / "pure"
        if function_needs_pure(requirements) and (problem := build_pure(house)):
            if _unreachable(problem):
                res.skipped = "package index unreachable: " + problem
            else:
                res.error = problem
            return res
        links = ["--find-links", str(house)] if house.is_dir() else []
        proc = _pip(["install", "--dry-run", "--ignore-installed", "--quiet", *PLATFORM, *links,
                     "--target", str(Path(tmp) / "target"), "--report", str(report),
                     "-r", str(requirements)])
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-3:]
            if _unreachable(proc.stderr):
                res.skipped = "package index unreachable: " + " ".join(tail)
            else:
                res.error = " ".join(tail) or "pip failed"
            return res
        doc = json.loads(report.read_text())
        res.packages = sorted((i["metadata"]["name"], i["metadata"]["version"])
                              for i in doc.get("install", []))
        res.cuda = cuda_packages(res.packages)
        res.built = sorted(f"{n}=={v}" for n, v in res.packages
                           if re.sub(r"[-_.]+", "-", n.lower()) in PURE_SDISTS)
        if res.cuda or not measure:
            return res  # never download gigabytes of CUDA wheels just to weigh them
        wheels = Path(tmp) / "wheels"
        proc = _pip(["download", "--quiet", "--no-deps", *PLATFORM, *links, "-d", str(wheels),
                     *[f"{n}=={v}" for n, v in res.packages]])
        if proc.returncode != 0:
            res.error = "download failed: " + " ".join(proc.stderr.strip().splitlines()[-2:])
            return res
        for whl in wheels.glob("*.whl"):
            res.wheels_mb += whl.stat().st_size / 2**20
            with zipfile.ZipFile(whl) as z:
                res.unpacked_mb += sum(i.file_size for i in z.infolist()) / 2**20
    return res


def function_needs_pure(requirements: Path) -> bool:
    """Whether anything in the file is known to pull in one of PURE_SDISTS (Vosk pulls srt)."""
    text = requirements.read_text().lower()
    return bool(re.search(r"^\s*(vosk|srt)\b", text, re.MULTILINE))


def functions() -> dict[str, Path]:
    return {p.parent.name: p for p in sorted((ROOT / "functions").glob("*/requirements.txt"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="functions (default: all)")
    ap.add_argument("--no-measure", action="store_true", help="resolve only; download nothing")
    args = ap.parse_args(argv)
    found = functions()
    names = args.names or list(found)
    worst = 0
    for name in names:
        if name not in found:
            print(f"{name}: no functions/{name}/requirements.txt", file=sys.stderr)
            return 2
        res = resolve(name, found[name], measure=not args.no_measure)
        if res.skipped:
            print(f"{name}: SKIPPED ({res.skipped})")
            continue
        if res.error:
            print(f"{name}: FAIL no arm64 wheel set: {res.error}")
            worst = 1
            continue
        print(f"{name}: {len(res.packages)} wheels for manylinux_2_28_aarch64 / cp312")
        print("  " + ", ".join(f"{n}=={v}" for n, v in res.packages))
        if res.built:
            print(f"  built from sdist here as a pure-Python wheel, as pip does on the Pi: "
                  f"{', '.join(res.built)} ({'; '.join(PURE_SDISTS.values())})")
        if res.cuda:
            print(f"  FAIL CUDA packages: {', '.join(res.cuda)}")
            worst = 1
            continue
        if not args.no_measure:
            verdict = "ok" if res.image_mb <= BUDGET_MB else f"FAIL over {BUDGET_MB} MB"
            print(f"  wheels {res.wheels_mb:.0f} MB, unpacked {res.unpacked_mb:.0f} MB, image "
                  f"~{res.image_mb:.0f} MB (base layers ~{BASE_IMAGE_MB} MB estimated): "
                  f"{verdict}")
            worst = worst or (0 if res.image_mb <= BUDGET_MB else 1)
    return worst


if __name__ == "__main__":
    sys.exit(main())
