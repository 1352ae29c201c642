"""Dense search over a guild's shards: segment embeddings in SQLite, a small index in memory.

Scoring every float vector per question would read hundreds of MB at 1,000 hours. Instead each
shard's packed sign bits (48 bytes a segment) stay in memory, keyed by the shard file's identity,
so a question costs one Hamming pass over them plus exact cosine for the few hundred nearest,
read from SQLite by primary key.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from dataclasses import dataclass

import numpy as np

from homelabpi.embeddings import from_blobs, sign_code

log = logging.getLogger(__name__)
RESCORE = 256  # Hamming candidates per shard that get an exact cosine
_CHUNK = 20000


@dataclass
class ShardVectors:
    """What one shard contributes to dense search, as arrays aligned by row."""

    ids: np.ndarray  # segment ids, int64
    codes: np.ndarray  # packed sign bits viewed as uint64, (n, words)
    start: np.ndarray  # segment start, epoch seconds
    end: np.ndarray
    speaker: np.ndarray  # speaker ids (shard-local)
    session: np.ndarray  # index into `sessions`
    sessions: list[str]
    dim: int

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.ids, self.codes, self.start, self.end, self.speaker,
                                      self.session))


_cache: dict[tuple[str, str], tuple[tuple, ShardVectors]] = {}
_lock = threading.Lock()


def _identity(path: str) -> tuple:
    """Changes whenever the shard's content may have: the file or its WAL was rewritten."""
    out: list[object] = []
    for p in (path, path + "-wal"):
        try:
            st = os.stat(p)
            out += [st.st_ino, st.st_mtime_ns, st.st_size]
        except OSError:
            out += [None]
    return tuple(out)


def _db_path(conn: sqlite3.Connection) -> str:
    row = next((r for r in conn.execute("PRAGMA database_list") if r[1] == "main"), None)
    return row[2] if row and row[2] else f"memory:{id(conn)}"


def _words(codes: np.ndarray) -> np.ndarray:
    """Pad packed bits to whole uint64 words so XOR and bit counting run 8 bytes at a time."""
    pad = (-codes.shape[1]) % 8
    if pad:
        codes = np.pad(codes, ((0, 0), (0, pad)))
    return np.ascontiguousarray(codes).view(np.uint64)


def load(conn: sqlite3.Connection, model: str) -> ShardVectors | None:
    """The shard's in-memory dense index for `model` (cached until the file changes)."""
    path = _db_path(conn)
    ident = _identity(path)
    with _lock:
        hit = _cache.get((path, model))
        if hit is not None and hit[0] == ident:
            return hit[1]
    try:
        first = conn.execute("SELECT length(vector) FROM embedding WHERE model = ? LIMIT 1",
                             (model,)).fetchone()
    except sqlite3.OperationalError:  # a v1 shard a read-only replica cannot migrate
        return None
    if first is None:
        return None
    dim = first[0] // 2
    parts: dict[str, list] = {"ids": [], "codes": [], "start": [], "end": [], "speaker": [],
                              "session": []}
    sessions: dict[str, int] = {}
    cur = conn.execute(
        "SELECT e.segment_id, e.code, s.start, s.end, s.speaker_id, s.session_id "
        "FROM embedding e JOIN segment s ON s.id = e.segment_id WHERE e.model = ?", (model,))
    while rows := cur.fetchmany(_CHUNK):
        cols = list(zip(*rows, strict=True))
        parts["ids"].append(np.array(cols[0], dtype=np.int64))
        parts["codes"].append(np.frombuffer(b"".join(cols[1]), dtype=np.uint8)
                              .reshape(len(rows), -1))
        parts["start"].append(np.array(cols[2], dtype=np.float64))
        parts["end"].append(np.array(cols[3], dtype=np.float64))
        parts["speaker"].append(np.array(cols[4], dtype=np.int64))
        parts["session"].append(np.array([sessions.setdefault(s, len(sessions)) for s in cols[5]],
                                         dtype=np.int32))
    sv = ShardVectors(
        ids=np.concatenate(parts["ids"]), codes=_words(np.concatenate(parts["codes"])),
        start=np.concatenate(parts["start"]), end=np.concatenate(parts["end"]),
        speaker=np.concatenate(parts["speaker"]), session=np.concatenate(parts["session"]),
        sessions=list(sessions), dim=dim)
    with _lock:
        _cache[(path, model)] = (ident, sv)
    log.info("dense index for %s: %d segments, %.1f MB", path, len(sv.ids), sv.nbytes / 1e6)
    return sv


def forget() -> None:
    """Drop every cached shard index (tests; a process that wants its memory back)."""
    with _lock:
        _cache.clear()


def search(conn: sqlite3.Connection, query: np.ndarray, model: str, limit: int, *,
           speakers: list[int] | None = None, after: float | None = None,
           before: float | None = None, sessions: list[str] | None = None
           ) -> list[tuple[int, float]]:
    """(segment id, cosine) of the shard's nearest segments to `query`, best first.

    Filters apply before the nearest are chosen, so "what did Bob say" searches Bob's segments.
    """
    sv = load(conn, model)
    if sv is None or len(sv.ids) == 0 or sv.dim != query.shape[0]:
        return []
    mask = np.ones(len(sv.ids), dtype=bool)
    if speakers is not None:
        mask &= np.isin(sv.speaker, np.asarray(speakers, dtype=np.int64))
    if after is not None:
        mask &= sv.end >= after
    if before is not None:
        mask &= sv.start < before
    if sessions is not None:
        wanted = [i for i, s in enumerate(sv.sessions) if s in set(sessions)]
        mask &= np.isin(sv.session, np.asarray(wanted, dtype=np.int32))
    rows = np.flatnonzero(mask)
    if len(rows) == 0:
        return []
    if len(rows) > RESCORE:
        qcode = _words(sign_code(query[None, :]))[0]
        dist = np.bitwise_count(sv.codes[rows] ^ qcode).sum(axis=1)
        rows = rows[np.argpartition(dist, RESCORE)[:RESCORE]]
    ids = [int(i) for i in sv.ids[rows]]
    found = conn.execute(f"SELECT segment_id, vector FROM embedding WHERE segment_id IN "
                         f"({','.join('?' * len(ids))})", ids).fetchall()
    if not found:
        return []
    vecs = from_blobs([r[1] for r in found], sv.dim)
    sims = vecs @ query.astype(np.float32)
    order = np.argsort(-sims)[:limit]
    return [(int(found[i][0]), float(sims[i])) for i in order]
