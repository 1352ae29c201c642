"""The transcript document: what `transcribe` stores under `transcripts/` and `index` reads.

It carries everything the index needs (names, times, words), so SQLite can be rebuilt from the
store alone. Segment times are seconds from the clip's start; `started_at` anchors them in UTC.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from homelabpi.asr import Word
from homelabpi.errors import BadInput

VERSION = 1
# A new segment starts after a pause this long, or when a segment grows past this many seconds.
SEGMENT_GAP_SECONDS = 0.8
SEGMENT_MAX_SECONDS = 20.0
# Sentences shorter than this ("Okay.", "Yes, fine.") join a neighbour closer than the pause.
SEGMENT_MIN_WORDS = 4
SEGMENT_PAUSE_SECONDS = 1.5


@dataclass(frozen=True)
class ClipInfo:
    """Who and when, read from the clip's object metadata (set by the bot or `ingest`)."""

    guild: str
    session: str
    clip: str
    channel: str
    speaker: str
    started_at: datetime
    channel_id: str = ""
    speaker_id: str = ""
    source: str = "ingest"
    name: str = ""

    @classmethod
    def from_metadata(cls, guild: str, session: str, clip: str, meta: dict[str, str],
                      key: str) -> ClipInfo:
        meta = {k: unquote(v) for k, v in meta.items()}
        missing = [m for m in ("speaker", "started-at") if not meta.get(m)]
        if missing:
            raise BadInput(f"{key}: object metadata lacks {', '.join(missing)}; upload clips with "
                           "x-amz-meta-speaker and x-amz-meta-started-at (ISO 8601 UTC)")
        return cls(guild=guild, session=session, clip=clip, channel=meta.get("channel", ""),
                   speaker=meta["speaker"], started_at=parse_time(meta["started-at"], key),
                   channel_id=meta.get("channel-id", ""), speaker_id=meta.get("speaker-id", ""),
                   source=meta.get("source", "ingest"), name=meta.get("original-name", ""))

    def metadata(self) -> dict[str, str]:
        """Object metadata, percent-encoded: S3 carries it in HTTP headers, which are ASCII."""
        plain = {"guild": self.guild, "session": self.session, "channel": self.channel,
                 "channel-id": self.channel_id, "speaker": self.speaker,
                 "speaker-id": self.speaker_id, "started-at": iso(self.started_at),
                 "source": self.source, "original-name": self.name}
        return {k: quote(v, safe=" ,.:@-_") for k, v in plain.items()}


def iso(when: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, the one time format every output uses."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_time(text: str, what: str = "time") -> datetime:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError) as exc:
        raise BadInput(f"{what}: {text!r} is not an ISO 8601 time such as "
                       "2026-11-24T12:41:00Z") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def segments_from_words(words: Iterable[Word], speaker: str, language: str = "en") -> list[dict]:
    """Group words into segments that read like speech: one thought, its own start and end.

    With punctuation (Whisper), a segment is a sentence, or a few short ones ("Yes. Fine, do
    it."); a long pause or SEGMENT_MAX_SECONDS ends one early. Without (Vosk), pauses decide.
    """
    words = list(words)
    if any(_ends_sentence(w.text) for w in words):
        groups = _merge_short(_sentences(words, language))
    else:
        groups = [words] if words else []
    return [segment(speaker, ws) for g in groups for ws in _split_long(g)]


def _ends_sentence(text: str) -> bool:
    return text.rstrip("\"')]}”’").endswith((".", "?", "!", "…"))


def _sentences(words: list[Word], language: str) -> list[list[Word]]:
    """Words cut into sentences by sentencex (abbreviations, numbers and IPs stay whole)."""
    from sentencex import segment as split_sentences

    text = " ".join(w.text for w in words)
    starts, pos = [], 0
    for w in words:
        starts.append(pos)
        pos += len(w.text) + 1
    bounds, pos = [], 0
    for sentence in split_sentences(language, text):
        pos += len(sentence)
        bounds.append(pos)
    if not bounds or bounds[-1] != len(text):  # the pieces must tile the text to be mapped back
        return [words]
    out: list[list[Word]] = [[]]
    b = 0
    for w, start in zip(words, starts, strict=True):
        while start >= bounds[b]:
            b += 1
            out.append([])
        out[-1].append(w)
    return [ws for ws in out if ws]


def _merge_short(sentences: list[list[Word]]) -> list[list[Word]]:
    """A segment under SEGMENT_MIN_WORDS ("Okay.") takes the next sentence when no pause
    divides them, so no segment is a lone filler while a thought still reads as its own."""
    out: list[list[Word]] = []
    for ws in sentences:
        prev = out[-1] if out else None
        if (prev is not None and len(prev) < SEGMENT_MIN_WORDS
                and ws[0].start - prev[-1].end < SEGMENT_PAUSE_SECONDS
                and ws[-1].end - prev[0].start <= SEGMENT_MAX_SECONDS):
            prev.extend(ws)
        else:
            out.append(list(ws))
    return out


def _split_long(words: list[Word]) -> list[list[Word]]:
    """Cut at pauses, and at SEGMENT_MAX_SECONDS however the words run on."""
    out: list[list[Word]] = []
    for w in words:
        cur = out[-1] if out else None
        if (cur is None or w.start - cur[-1].end >= SEGMENT_GAP_SECONDS
                or w.end - cur[0].start > SEGMENT_MAX_SECONDS):
            out.append([w])
        else:
            cur.append(w)
    return out


def segment(speaker: str, words: list[Word], text: str | None = None) -> dict:
    conf = sum(w.conf for w in words) / len(words) if words else 1.0
    return {
        "speaker": speaker,
        "start": round(words[0].start, 3),
        "end": round(words[-1].end, 3),
        "text": text if text is not None else " ".join(w.text for w in words),
        "words": [w.as_dict() for w in words],
        "confidence": round(conf, 3),
    }


def document(info: ClipInfo, *, source_key: str, source_etag: str, kind: str, engine: str,
             duration: float, segments: list[dict], status: str = "ok",
             error: str | None = None) -> dict:
    return {
        "version": VERSION, "status": status, "error": error,
        "guild": info.guild, "session": info.session, "clip": info.clip,
        "channel": info.channel, "channel_id": info.channel_id,
        "speaker": info.speaker, "speaker_id": info.speaker_id,
        "started_at": iso(info.started_at), "duration": round(duration, 3),
        "source": {"key": source_key, "etag": source_etag, "kind": kind, "name": info.name},
        "engine": engine, "segments": segments,
    }


def load(body: bytes, key: str) -> dict:
    """Parse and check a stored transcript; BadInput names the key and the problem."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise BadInput(f"{key}: transcript is not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise BadInput(f"{key}: not a version {VERSION} HomeLabPi transcript")
    for field in ("guild", "session", "clip", "speaker", "started_at", "segments"):
        if field not in doc:
            raise BadInput(f"{key}: transcript lacks {field!r}")
    parse_time(doc["started_at"], key)
    return doc


def absolute(doc: dict, seconds: float) -> datetime:
    return parse_time(doc["started_at"]) + timedelta(seconds=seconds)
