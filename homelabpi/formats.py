"""A session's segments as Markdown, SubRip, WebVTT or JSON (CLI `transcript`, bot `/transcript`).

Input is what the answer function's `transcript` op returns: the session's `started_at` and its
`segments` (speaker, start, end as ISO 8601 UTC, text, words) in time order across speakers.
Subtitle times count from the session's start, so they line up with the original recording.
"""

from __future__ import annotations

import json
from datetime import datetime

from homelabpi.errors import BadInput
from homelabpi.transcripts import parse_time

FORMATS = ("md", "srt", "vtt", "json")


def render(doc: dict, fmt: str) -> str:
    if fmt not in FORMATS:
        raise BadInput(f"transcript format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    session, segments = doc["session"], doc["segments"]
    origin = parse_time(doc["started_at"]) if doc.get("started_at") else None
    if fmt == "md":
        lines = [f"# Session {session}", ""]
        if origin is not None:
            lines += [f"Started {doc['started_at']}", ""]
        for s in segments:
            lines.append(f"**{s['speaker']}** [{_clock(parse_time(s['start']), origin)}]: "
                         f"{s['text']}  ")
        return "\n".join(lines) + "\n"
    out = ["WEBVTT", ""] if fmt == "vtt" else []
    sep = "." if fmt == "vtt" else ","
    for i, s in enumerate(segments, 1):
        start = _offset(parse_time(s["start"]), origin, sep)
        end = _offset(parse_time(s["end"]), origin, sep)
        text = f"<v {s['speaker']}>{s['text']}" if fmt == "vtt" else f"{s['speaker']}: {s['text']}"
        out += [str(i), f"{start} --> {end}", text, ""]
    return "\n".join(out)


def _clock(when: datetime, origin: datetime | None) -> str:
    seconds = (when - origin).total_seconds() if origin else 0.0
    return f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"


def _offset(when: datetime, origin: datetime | None, sep: str) -> str:
    ms = round((when - origin).total_seconds() * 1000) if origin else 0
    ms = max(ms, 0)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"
