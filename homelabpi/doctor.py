"""`homelabpi doctor`: what is configured, what works, what is missing and how to fix it."""

from __future__ import annotations

import ctypes.util
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from homelabpi.settings import Settings, documented


@dataclass
class Check:
    name: str
    state: str  # ok, warn, fail
    detail: str
    fix: str = ""


def run_checks(settings: Settings) -> Iterator[Check]:
    yield from _data_dir(settings)
    yield from _sqlite()
    yield from _audio()
    yield from _engine(settings)
    yield from _index(settings)
    yield from _gateway(settings)
    yield from _bot()


def configured(settings: Settings) -> list[tuple[str, str]]:
    shown = []
    for env, _doc in documented():
        value = os.environ.get(env)
        if value and any(word in env for word in ("SECRET", "TOKEN", "PASSWORD")):
            value = "(set, hidden)"
        shown.append((env, value if value else "(default)"))
    return shown


def _data_dir(settings: Settings) -> Iterator[Check]:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        probe = settings.data_dir / ".doctor"
        probe.write_text("ok")
        probe.unlink()
        yield Check("data directory", "ok", str(settings.data_dir))
    except OSError as exc:
        yield Check("data directory", "fail", f"{settings.data_dir}: {exc}",
                    "set HOMELABPI_DATA_DIR to a writable directory")


def _sqlite() -> Iterator[Check]:
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        yield Check("SQLite FTS5", "ok", f"SQLite {sqlite3.sqlite_version}")
    except sqlite3.Error as exc:
        yield Check("SQLite FTS5", "fail", str(exc), "use a Python whose SQLite has FTS5 "
                    "(python.org and Debian builds do)")


def _audio() -> Iterator[Check]:
    try:
        import av

        yield Check("audio decoding", "ok", f"PyAV {av.__version__} (FFmpeg "
                    f"{av.library_versions.get('libavcodec', ('?',))[0]} libavcodec)")
    except ImportError as exc:
        yield Check("audio decoding", "fail", str(exc), "pip install av")


def _engine(settings: Settings) -> Iterator[Check]:
    from homelabpi.asr import choose, load_engine
    from homelabpi.audio import Pcm
    from homelabpi.errors import HomeLabPiError

    try:
        choice = choose(settings)
        engine = load_engine(settings)
        engine.transcribe(Pcm(b"\0\0" * 8000))
    except (HomeLabPiError, ImportError, OSError, RuntimeError) as exc:
        yield Check("speech engine", "fail", str(exc),
                    "fix the setting it names, or unset HOMELABPI_ASR_ENGINE, "
                    "HOMELABPI_WHISPER_MODEL and HOMELABPI_VOSK_MODEL to use the bundled Whisper "
                    "tiny.en")
        return
    yield Check("speech engine", "ok", f"{engine.name}; model {choice.model} ({choice.source})")


def _index(settings: Settings) -> Iterator[Check]:
    from homelabpi.index.shards import Shards, open_readonly

    shards = Shards(settings.index_dir)
    guilds = shards.guilds()
    if not guilds:
        yield Check("index", "warn", f"no shards yet under {settings.index_dir}",
                    "homelabpi ingest a recording, or homelabpi reindex")
        return
    total = 0
    for guild in guilds:
        for path in shards.paths(guild):
            conn = open_readonly(path)
            try:
                total += conn.execute("SELECT count(*) FROM segment").fetchone()[0]
            finally:
                conn.close()
    yield Check("index", "ok", f"{len(guilds)} guild(s), {total} segments under "
                f"{settings.index_dir}")


def _gateway(settings: Settings) -> Iterator[Check]:
    if not settings.gateway:
        yield Check("gateway", "ok", "HOMELABPI_GATEWAY unset: functions run in-process")
        return
    import requests

    try:
        resp = requests.get(f"{settings.gateway}/healthz", timeout=3)
        state = "ok" if resp.ok else "fail"
        yield Check("gateway", state, f"{settings.gateway} answered {resp.status_code}",
                    "" if resp.ok else "check the gateway's log")
    except requests.RequestException as exc:
        yield Check("gateway", "fail", f"{settings.gateway}: {exc}",
                    "start it with 'homelabpi up', or unset HOMELABPI_GATEWAY")


def _bot() -> Iterator[Check]:
    if not os.environ.get("DISCORD_TOKEN"):
        yield Check("Discord bot", "warn", "DISCORD_TOKEN unset: 'homelabpi up' runs without "
                    "the bot", "create a bot application (README) and set DISCORD_TOKEN")
        return
    try:
        import discord  # noqa: F401
    except ImportError:
        yield Check("Discord bot", "fail", "discord.py is not installed",
                    "pip install 'homelabpi[bot]'")
        return
    if ctypes.util.find_library("opus") is None:
        yield Check("Discord bot", "fail", "libopus not found", "apt-get install libopus0")
        return
    yield Check("Discord bot", "ok", "DISCORD_TOKEN set, discord.py and libopus present")
