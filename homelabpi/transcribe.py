"""The transcribe function's job: an `audio/` object → a transcript under `transcripts/`.

A clip already transcribed from the same eTag is not decoded again (events arrive at least
once). Audio that cannot be decoded still gets a transcript, marked failed with the reason, so
the index, `ingest` and `sessions` can show what went wrong with which file.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

from homelabpi.audio import decode_chunks
from homelabpi.errors import BadInput, HomeLabPiError
from homelabpi.keys import ClipKey
from homelabpi.runtime import Runtime
from homelabpi.transcripts import ClipInfo, document, segments_from_words

log = logging.getLogger(__name__)


def transcribe_object(rt: Runtime, key: str) -> dict:
    """Transcribe one stored clip; returns a summary. BadInput for clips we cannot use."""
    ck = ClipKey.parse(key)
    if not key.startswith("audio/"):
        raise BadInput(f"{key}: transcribe takes 'audio/…' objects")
    info = rt.store.stat(key)
    tkey = ck.transcript
    try:
        done = rt.store.stat(tkey)
        if done.metadata.get("source-etag") == info.etag:
            log.info("transcript %s already made from %s (etag %s)", tkey, key, info.etag)
            return {"key": key, "transcript": tkey, "outcome": "unchanged"}
    except HomeLabPiError:
        pass
    clip = ClipInfo.from_metadata(ck.guild, ck.session, ck.clip, info.metadata, key)
    engine = rt.engine
    t0 = time.process_time()
    # The clip goes to a temporary file and is decoded as a stream straight into the engine:
    # neither the file nor its PCM is ever held whole in memory, whatever its length.
    tmp_dir = rt.settings.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=Path(key).suffix) as tmp:
        rt.store.get_file(key, tmp.name)
        try:
            report = rt.transcribe_progress
            words, seconds = engine.transcribe_stream(
                decode_chunks(Path(tmp.name), key, rt.settings.max_audio_seconds),
                progress=(lambda done: report(key, done)) if report is not None else None)
        except BadInput as exc:
            _store(rt, tkey, info.etag, document(
                clip, source_key=key, source_etag=info.etag, kind="audio", engine=engine.name,
                duration=0.0, segments=[], status="failed", error=str(exc)))
            log.warning("transcribe rejected %s: %s", key, exc)
            raise
    segments = segments_from_words(words, clip.speaker)
    _store(rt, tkey, info.etag, document(
        clip, source_key=key, source_etag=info.etag, kind="audio", engine=engine.name,
        duration=seconds, segments=segments))
    cpu = time.process_time() - t0
    log.info("transcribed %s (%.1f s audio, %d words, %.1f s CPU, %s) → %s", key, seconds,
             len(words), cpu, engine.name, tkey)
    return {"key": key, "transcript": tkey, "outcome": "transcribed", "words": len(words),
            "seconds": round(seconds, 3)}


def _store(rt: Runtime, tkey: str, source_etag: str, doc: dict) -> None:
    rt.store.put(tkey, json.dumps(doc, ensure_ascii=False).encode(),
                 content_type="application/json", metadata={"source-etag": source_etag})
