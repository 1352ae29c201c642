"""WebVTT and SubRip files → transcript segments, so existing captions need no recognition.

A VTT voice tag (`<v Alice>…`) names the cue's speaker; otherwise the `--speaker` given to
ingest does. Word times are spread evenly across each cue: good enough to cite a cue's time.
"""

from __future__ import annotations

import re
from pathlib import Path

from homelabpi.asr import Word
from homelabpi.errors import BadInput
from homelabpi.transcripts import segment

_TIMING = re.compile(
    r"^\s*(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})\s*-->\s*(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")
_VOICE = re.compile(r"<v(?:\.[^\s>]+)*\s+([^>]+)>")
_TAG = re.compile(r"<[^>]+>")


def _seconds(h: str | None, m: str, s: str, ms: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def parse(text: str, default_speaker: str, name: str) -> list[dict]:
    """Segments (speaker, start, end, text, words) in time order; BadInput if there are none."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    suffix = Path(name).suffix.lower()
    if suffix == ".vtt" and not text.startswith("WEBVTT"):
        raise BadInput(f"{name}: a WebVTT file must start with 'WEBVTT'")
    segments = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        timing_at = next((i for i, ln in enumerate(lines) if "-->" in ln), None)
        if timing_at is None:
            continue  # header, NOTE, STYLE or a bare cue number
        m = _TIMING.match(lines[timing_at])
        if not m:
            raise BadInput(f"{name}: cannot read cue timing {lines[timing_at]!r}; expected "
                           "'00:00:01.000 --> 00:00:04.000'")
        start, end = _seconds(*m.group(1, 2, 3, 4)), _seconds(*m.group(5, 6, 7, 8))
        raw = " ".join(lines[timing_at + 1:])
        voice = _VOICE.search(raw)
        speaker = voice.group(1).strip() if voice else default_speaker
        body = re.sub(r"\s+", " ", _TAG.sub("", raw)).strip()
        if not body or end < start:
            continue
        tokens = body.split()
        step = (end - start) / len(tokens)
        words = [Word(t, start + i * step, start + (i + 1) * step, 1.0)
                 for i, t in enumerate(tokens)]
        segments.append(segment(speaker, words, text=body))
    if not segments:
        raise BadInput(f"{name}: no subtitle cues found; expected WebVTT or SubRip cues")
    segments.sort(key=lambda s: s["start"])
    return segments
