"""Recordings and subtitle files a user already has → the store, the same way the bot's clips go.

Every file is checked before anything is uploaded, so a bad file is reported by name at once and
the rest of the batch still goes in. Audio becomes an `audio/` object (transcribe picks it up);
a `.vtt`/`.srt` file becomes a transcript directly (no speech recognition needed).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from homelabpi import audio, subtitles
from homelabpi.client import Client
from homelabpi.errors import BadInput, HomeLabPiError
from homelabpi.keys import ClipKey, new_id, validate_id
from homelabpi.transcripts import ClipInfo, document

log = logging.getLogger(__name__)


@dataclass
class ClipResult:
    path: str
    key: str = ""
    status: str = "pending"  # indexed, failed, queued, rejected
    error: str | None = None
    transcript: str = field(default="", repr=False)
    seconds: float = 0.0  # the recording's length, as probed before upload

    def as_dict(self) -> dict:
        return {"key": self.key, "status": self.status, "error": self.error, "path": self.path,
                "seconds": round(self.seconds, 3)}


@dataclass
class Report:
    session: str
    clips: list[ClipResult]

    @property
    def ok(self) -> bool:
        return all(c.status in ("indexed", "queued") for c in self.clips)

    def as_dict(self) -> dict:
        return {"session": self.session, "clips": [c.as_dict() for c in self.clips]}


# Told (clip, seconds of it done): once with 0 when a file is accepted, as transcription moves
# through it (in-process), and with its whole length when it is settled (indexed or failed).
Progress = Callable[[ClipResult, float], None]


def ingest(client: Client, paths: list[Path], *, guild: str, channel: str, speaker: str,
           session: str | None = None, started_at: datetime | None = None, wait: bool = True,
           timeout: float = 3600.0, progress: Progress | None = None) -> Report:
    """Upload each file, then (unless `wait` is False) wait until each is indexed or failed."""
    validate_id(guild, "guild")
    session = validate_id(session, "session") if session else new_id("s")
    settings = client.settings
    store = client.runtime.store
    next_start = started_at
    results: list[ClipResult] = []
    by_key: dict[str, ClipResult] = {}
    if progress is not None and not settings.gateway:
        client.runtime.transcribe_progress = (
            lambda key, done: progress(by_key[key], done) if key in by_key else None)
    for path in paths:
        result = ClipResult(path=str(path))
        results.append(result)
        try:
            clip = ClipKey(guild, session, new_id("c"))
            is_subtitle = path.suffix.lower() in audio.SUBTITLE_EXTENSIONS
            if is_subtitle:
                segments = subtitles.parse(_read_text(path), speaker, path.name)
                duration = max(s["end"] for s in segments)
            else:
                segments, duration = [], audio.probe(path, settings.max_audio_seconds)
            result.seconds = duration
            start = next_start or _default_start(path, duration)
            if next_start is not None:
                next_start = next_start + timedelta(seconds=duration)
            info = ClipInfo(guild=guild, session=session, clip=clip.clip, channel=channel,
                            speaker=speaker, started_at=start, source="ingest", name=path.name)
            if is_subtitle:
                result.key = result.transcript = clip.transcript
                doc = document(info, source_key=clip.transcript, source_etag="",
                               kind="subtitles", engine="subtitles", duration=duration,
                               segments=segments)
                store.put(clip.transcript, json.dumps(doc, ensure_ascii=False).encode(),
                          content_type="application/json")
            else:
                result.key = clip.audio(path.suffix or ".bin")
                result.transcript = clip.transcript
                with open(path, "rb") as f:
                    store.put(result.key, f, metadata=info.metadata(),
                              content_type=mimetypes.guess_type(path.name)[0]
                              or "application/octet-stream")
            result.status = "queued"
            by_key[result.key] = result
            log.info("ingesting %s as %s", path, result.key)
            if progress:
                progress(result, 0.0)
        except (HomeLabPiError, OSError) as exc:
            result.status, result.error = "rejected", str(exc)
            log.warning("not ingesting %s: %s", path, exc)
            if progress:
                progress(result, result.seconds)
            continue
        if not settings.gateway:
            client.deliver_events()  # runs transcribe and index here, one file at a time
            _settle(client, guild, [result], progress)
    if settings.gateway:
        client.deliver_events()
    if wait:
        pending = [r for r in results if r.status == "queued"]
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            if not settings.gateway:
                client.deliver_events()  # retry anything a transient failure left behind
            pending = _settle(client, guild, pending, progress)
            if pending:
                time.sleep(0.5)
        for r in pending:
            r.status, r.error = "failed", f"not indexed within {timeout:.0f} s; see the gateway log"
    return Report(session, results)


def _settle(client: Client, guild: str, pending: list[ClipResult],
            progress: Progress | None) -> list[ClipResult]:
    """Mark the clips the index has seen; returns those still pending."""
    found = client.status(guild, [r.transcript for r in pending])
    still = []
    for r in pending:
        row = found.get(r.transcript)
        if row is None:
            still.append(r)
            continue
        r.status = "indexed" if row["status"] == "ok" else "failed"
        r.error = row["error"]
        if progress:
            progress(r, r.seconds)
    return still


def _default_start(path: Path, duration: float) -> datetime:
    """No --started-at: assume the recording ended when the file was last written."""
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return mtime - timedelta(seconds=duration)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise BadInput(f"{path.name}: the file is empty; nothing to ingest")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")
