"""Shared fixtures: every test gets its own data directory and nothing from the caller's env."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SPEECH_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")
ROOT = Path(__file__).resolve().parent.parent

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
CLOCK_DIR = Path(__file__).resolve().parent / "clock"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--clock-shift-days", type=float, default=None, metavar="N",
                     help="Run the suite N days from today (negative: before), this process and "
                          "every Python subprocess, to show that no test depends on the date.")


def pytest_configure(config: pytest.Config) -> None:
    shift = config.getoption("--clock-shift-days")
    if shift is None or os.environ.get("TEST_CLOCK_SHIFT_DAYS"):
        return  # no shift asked for, or sitecustomize already moved this process
    os.environ["TEST_CLOCK_SHIFT_DAYS"] = str(shift)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(CLOCK_DIR), os.environ.get("PYTHONPATH", "")) if p)
    import datetime

    import time_machine

    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=shift)
    time_machine.travel(when, tick=True).start()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("HOMELABPI_") or name == "DISCORD_TOKEN":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOMELABPI_DATA_DIR", str(tmp_path / "data"))
    yield
    from homelabpi import runtime

    runtime.install(None)


@pytest.fixture
def settings(tmp_path):
    from homelabpi.settings import Settings

    return Settings.from_env()


@pytest.fixture
def rt(settings):
    from homelabpi.runtime import Runtime, install

    runtime = Runtime(settings)
    install(runtime)
    yield runtime
    runtime.close()


@pytest.fixture
def client(settings, rt):
    from homelabpi.client import Client

    return Client(settings, rt)


@pytest.fixture(scope="session")
def librivox() -> dict[Path, list[str]]:
    """Real read speech with reference transcripts (Debian's pocketsphinx-testdata)."""
    if not SPEECH_DIR.is_dir():
        pytest.skip("real speech needs Debian's pocketsphinx-testdata "
                    "(apt-get install pocketsphinx-testdata; ./run test does it as root)")
    refs = {}
    for line in (SPEECH_DIR / "transcription").read_text().splitlines():
        m = re.match(r"<s> (.*) </s> \((.*)\)", line.strip())
        if m:
            refs[SPEECH_DIR / f"{m.group(2)}.wav"] = m.group(1).split()
    return refs


@pytest.fixture(scope="session")
def espeak():
    """Synthesise speech to a 16 kHz WAV with espeak-ng."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("synthetic speech needs espeak-ng (apt-get install espeak-ng)")

    def say(text: str, out: Path, voice: str = "en-us") -> Path:
        raw = out.with_suffix(".22k.wav")
        subprocess.run([exe, "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(raw), "-ar", "16000",
                        "-ac", "1", str(out)], check=True)
        raw.unlink()
        return out

    return say
