"""Transcripts and query logs → shard rows. Idempotent by object key + eTag.

An event delivered twice, or replayed after a crash, finds the same key and eTag and changes
nothing; a transcript stored again with new content replaces its rows in one transaction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from homelabpi.answering import embeddings
from homelabpi.answering.embeddings import Embedder
from homelabpi.index.schema import (
    MODELS,
    Channel,
    Clip,
    Embedding,
    Guild,
    Query,
    Segment,
    Session,
    Speaker,
)
from homelabpi.index.shards import Shards, month_of
from homelabpi.transcripts import parse_time

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Indexed:
    key: str
    outcome: str  # "indexed", "replaced", "unchanged", "removed", "absent"
    guild: str = ""
    shard: str = ""  # the shard (month part) that holds, or held, the object's rows
    segments: int = 0


def index_transcript(shards: Shards, key: str, etag: str, doc: dict,
                     embedder: Embedder | None = None) -> Indexed:
    """Rows for one transcript, with an embedding per segment when given an embedder.

    Embeddings are computed before the write transaction, so the single writer's lock is never
    held across a model forward pass.
    """
    guild = doc["guild"]
    started = parse_time(doc["started_at"]).timestamp()
    month = month_of(started)
    with shards.lock:
        place = _place(shards, guild, month, Clip, key, etag)
    if place.unchanged:
        return Indexed(key, "unchanged", guild, place.shard)
    vectors = _embed(embedder, [seg["text"] for seg in doc["segments"]])
    with shards.lock:
        place = _place(shards, guild, month, Clip, key, etag)  # again: the lock was let go
        if place.unchanged:
            return Indexed(key, "unchanged", guild, place.shard)
        db = shards.writer(guild, place.shard)
        with db.bind_ctx(MODELS), db.atomic():
            rows = _write_transcript(db, guild, key, etag, doc, started, vectors, embedder)
    outcome = "replaced" if place.existing else "indexed"
    log.info("%s %s (etag %s): %d segments into %s/%s", outcome, key, etag, rows, guild,
             place.shard)
    return Indexed(key, outcome, guild, place.shard, rows)


@dataclass(frozen=True)
class _Place:
    shard: str
    existing: bool  # a version of the object is in `shard`
    unchanged: bool  # ... and it has this eTag


def _place(shards: Shards, guild: str, month: str, model, key: str, etag: str) -> _Place:
    """Where the object's rows go: the part holding an older version (so a full part changes
    only when one of its own objects does), else the month's open part."""
    for name in shards.parts(guild, month):
        with shards.writer(guild, name).bind_ctx(MODELS):
            row = model.get_or_none(model.key == key)
        if row is not None:
            return _Place(name, True, row.etag == etag)
    return _Place(shards.open_part(guild, month), False, False)


def _write_transcript(db, guild: str, key: str, etag: str, doc: dict, started: float,
                      vectors: np.ndarray | None, embedder: Embedder | None) -> int:
    """One transcript's rows, replacing an older version of it; inside the caller's transaction."""
    old = Clip.get_or_none(Clip.key == key)
    if old is not None:
        Segment.delete().where(Segment.clip == old).execute()
        old.delete_instance()
    Guild.insert(id=guild).on_conflict_ignore().execute()
    channel = _get_or_create(Channel, guild=guild, name=doc.get("channel") or "",
                             extra={"discord_id": doc.get("channel_id") or ""})
    speaker = _get_or_create(Speaker, guild=guild, name=doc["speaker"],
                             discord_id=doc.get("speaker_id") or "")
    end = started + float(doc.get("duration") or 0)
    for seg in doc["segments"]:
        end = max(end, started + float(seg["end"]))
    session = Session.get_or_none(Session.id == doc["session"])
    if session is None:
        session = Session.create(id=doc["session"], guild=guild, channel=channel,
                                 started_at=started, ended_at=end)
    else:
        Session.update(started_at=min(session.started_at, started),
                       ended_at=max(session.ended_at, end)).where(
            Session.id == session.id).execute()
    clip = Clip.create(
        key=key, etag=etag, audio_key=(doc.get("source") or {}).get("key", ""),
        session=session, speaker=speaker, channel=channel, started_at=started,
        duration=float(doc.get("duration") or 0), status=doc.get("status", "ok"),
        error=doc.get("error"), engine=doc.get("engine", ""),
        kind=(doc.get("source") or {}).get("kind", "audio"), indexed_at=time.time())
    rows = []
    speakers = {doc["speaker"]: speaker}
    for seg in doc["segments"]:
        name = seg.get("speaker") or doc["speaker"]
        if name not in speakers:  # subtitle cues may name their own speakers
            speakers[name] = _get_or_create(Speaker, guild=guild, name=name, discord_id="")
        rows.append({
            "clip": clip, "session": session, "speaker": speakers[name], "channel": channel,
            "start": started + float(seg["start"]), "end": started + float(seg["end"]),
            "text": seg["text"], "words": seg.get("words", []),
            "confidence": float(seg.get("confidence", 1.0)),
        })
    ids = []
    for row in rows:  # one by one: the ids pair each segment with its embedding
        ids.append(Segment.insert(row).execute())
    if vectors is not None:
        codes = embeddings.sign_code(vectors)
        name = embedder.name  # type: ignore[union-attr]
        emb_rows = [{"segment": sid, "model": name, "vector": embeddings.to_blob(v),
                     "code": codes[i].tobytes()} for i, (sid, v) in enumerate(zip(ids, vectors,
                                                                                  strict=True))]
        for i in range(0, len(emb_rows), 200):
            Embedding.insert_many(emb_rows[i:i + 200]).execute()
    return len(rows)


def _embed(embedder: object, texts: list[str]) -> np.ndarray | None:
    """Segment vectors, or None (no embedder, or it failed: BM25 still finds the segments)."""
    if embedder is None or not texts:
        return None
    try:
        return embedder.encode(texts)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - an embedding failure must not lose the transcript
        log.warning("could not embed %d segments (%s); indexing them for BM25 only",
                    len(texts), exc)
        return None


def remove_transcript(shards: Shards, key: str, guild: str) -> Indexed:
    """Delete a transcript's rows; the key does not say its month, so every shard is looked in."""
    with shards.lock:
        for name in shards.every(guild):
            db = shards.writer(guild, name)
            with db.bind_ctx(MODELS), db.atomic():
                clip = Clip.get_or_none(Clip.key == key)
                if clip is None:
                    continue
                Segment.delete().where(Segment.clip == clip).execute()
                clip.delete_instance()
                session = clip.session_id
                if not Clip.select().where(Clip.session == session).exists():
                    Session.delete().where(Session.id == session).execute()
            log.info("removed %s from %s/%s", key, guild, name)
            return Indexed(key, "removed", guild, name)
    return Indexed(key, "absent", guild)


def index_query(shards: Shards, key: str, etag: str, doc: dict) -> Indexed:
    guild = doc["guild"]
    asked = parse_time(doc["asked_at"]).timestamp()
    with shards.lock:
        place = _place(shards, guild, month_of(asked), Query, key, etag)
        if place.unchanged:
            return Indexed(key, "unchanged", guild, place.shard)
        db = shards.writer(guild, place.shard)
        with db.bind_ctx(MODELS), db.atomic():
            Guild.insert(id=guild).on_conflict_ignore().execute()
            Query.replace(
                id=doc["id"], key=key, etag=etag, question=doc["question"],
                answer=doc["answer"], confidence=float(doc.get("confidence", 0.0)),
                citations=doc.get("citations", []), mode=doc.get("mode", ""),
                asker=doc.get("asker") or "", asked_at=asked,
                latency_ms=int(doc.get("latency_ms", 0)), thread=str(doc.get("thread") or ""),
                resolved=doc.get("resolved") or {}).execute()
    log.info("logged query %s into %s/%s", key, guild, place.shard)
    return Indexed(key, "replaced" if place.existing else "indexed", guild, place.shard)


def _get_or_create(model, *, extra: dict | None = None, **where):
    row = model.get_or_none(**where)
    if row is None:
        row = model.create(**where, **(extra or {}))
    return row

