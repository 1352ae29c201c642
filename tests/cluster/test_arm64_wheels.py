"""The arm64 check's verdicts, offline (the resolution itself needs the package index, so it is
a script: `python faasd/arm64_wheels.py`; its figures are in docs/cluster.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "arm64_wheels", Path(__file__).resolve().parents[2] / "faasd" / "arm64_wheels.py")
arm64 = importlib.util.module_from_spec(spec)
sys.modules["arm64_wheels"] = arm64  # dataclasses look their module up
spec.loader.exec_module(arm64)


def test_cuda_builds_are_caught_by_name_and_local_version():
    # What torch 2.13.0's aarch64 wheel pulled in on PyPI (from the script's run).
    pulled = [("torch", "2.13.0"), ("nvidia-cublas", "13.1.1.3"), ("nvidia_cudnn_cu13", "9.20"),
              ("triton", "3.7.1"), ("cuda-bindings", "13.5.0"), ("numpy", "2.5.5")]
    assert arm64.cuda_packages(pulled) == [
        "nvidia-cublas==13.1.1.3", "nvidia-cudnn-cu13==9.20", "triton==3.7.1",
        "cuda-bindings==13.5.0"]
    assert arm64.cuda_packages([("torch", "2.13.0+cu130")]) == ["torch==2.13.0+cu130"]
    assert arm64.cuda_packages([("torch", "2.13.0+cpu"), ("onnxruntime", "1.32.0")]) == []


def test_every_function_is_checked_and_the_budget_applies():
    assert set(arm64.functions()) >= {"transcribe", "index", "answer", "reconcile"}
    big = arm64.Resolution("x", unpacked_mb=arm64.BUDGET_MB)
    assert not big.ok
    assert arm64.Resolution("x", unpacked_mb=100).ok
    assert not arm64.Resolution("x", cuda=["triton==3"]).ok
    assert arm64.Resolution("x", skipped="package index unreachable").ok


def test_platform_tags_cover_older_manylinux():
    # pip takes --platform literally: wheels tagged manylinux2014 / 2_17 must still match.
    tags = arm64.PLATFORM[arm64.PLATFORM.index("--platform") + 1::2]
    assert "manylinux2014_aarch64" in tags and "manylinux_2_17_aarch64" in tags
    assert "manylinux_2_28_aarch64" in tags


def test_only_the_named_pure_python_sdist_is_built(tmp_path):
    # Vosk pulls srt, which has no wheel; nothing else may come from source.
    assert set(arm64.PURE_SDISTS) == {"srt"}
    req = tmp_path / "requirements.txt"
    req.write_text("numpy>=1.26\nvosk>=0.3.45\n")
    assert arm64.function_needs_pure(req)
    req.write_text("numpy>=1.26\n# vosk is not used here\n")
    assert not arm64.function_needs_pure(req)
    assert arm64.function_needs_pure(arm64.functions()["transcribe"])
