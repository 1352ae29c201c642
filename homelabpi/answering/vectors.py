"""Dense search over a guild's shards: segment embeddings in SQLite, a small index in memory.

Scoring every float vector per question would read hundreds of MB at 1,000 hours. Instead each
shard's packed sign bits (48 bytes a segment) stay in memory, keyed by the shard file's identity,
so a question costs one Hamming pass over them, a finer look at the nearest thousand (the
question's own vector against their sign bits), and exact cosine for the best hundred or so,
read from SQLite by primary key.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from dataclasses import dataclass

import numpy as np

from homelabpi.answering.embeddings import from_blobs, sign_code

log = logging.getLogger(__name__)
# Per shard, the nearest by Hamming distance get a sign score; across the guild's shards, the best
# sign scores get an exact cosine. On MiniLM vectors of a synthetic 37,800-segment month, 1,024
# then 128 kept more of the true top 5 and top 20 than exact cosine for the Hamming nearest 256
# did. The exact budget is per question, not per shard, so it does not grow with the number of
# files (months, and parts of busy months); 2,048 kept the recall of 128 a shard at 1,000 hours.
SHORTLIST = 1024
RESCORE = 2048
_CHUNK = 20000


@dataclass
class ShardVectors:
    """What one shard contributes to dense search, as arrays aligned by row."""

    ids: np.ndarray  # segment ids, int64
    codes: np.ndarray  # packed sign bits as uint64, word-major: (words, n)
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


def shard_key(conn: sqlite3.Connection) -> tuple[str, tuple] | None:
    """(path, identity) to cache what is read from this shard by; None for an in-memory one."""
    path = _db_path(conn)
    return None if path.startswith("memory:") else (path, _identity(path))


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
        ids=np.concatenate(parts["ids"]),
        codes=np.ascontiguousarray(_words(np.concatenate(parts["codes"])).T),
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


def _matching(sv: ShardVectors, speakers: list[int] | None, after: float | None,
              before: float | None, sessions: list[str] | None) -> np.ndarray | None:
    """Rows that pass the filters; None when there are none to apply (every row passes)."""
    if speakers is None and after is None and before is None and sessions is None:
        return None
    mask = np.ones(len(sv.ids), dtype=bool)
    if speakers is not None:
        mask &= _among(sv.speaker, speakers)
    if after is not None:
        mask &= sv.end >= after
    if before is not None:
        mask &= sv.start < before
    if sessions is not None:
        mask &= _among(sv.session, [i for i, s in enumerate(sv.sessions) if s in set(sessions)])
    return np.flatnonzero(mask)


def _among(column: np.ndarray, wanted: list[int]) -> np.ndarray:
    """Where `column` is any of `wanted`.

    A filter names a few speakers or sessions: a comparison each is far cheaper than the sort
    np.isin does (3 ms a question over twelve shards).
    """
    mask = np.zeros(len(column), dtype=bool)
    for w in wanted:
        mask |= column == w
    return mask


def hamming(codes: np.ndarray, qcode: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Bits in which each code (word-major, `rows` of them or all) differs from `qcode`.

    One contiguous XOR and popcount per 64-bit word: summing an (n, 6) array along its short
    axis, as a row-major layout needs, took over ten times as long at 1,000 hours.
    """
    n = codes.shape[1] if rows is None else len(rows)
    dist = np.zeros(n, dtype=np.uint16)
    word = np.empty(n, dtype=np.uint64)
    bits = np.empty(n, dtype=np.uint8)
    for j in range(codes.shape[0]):
        if rows is None:
            np.bitwise_xor(codes[j], qcode[j], out=word)
        else:
            np.take(codes[j], rows, out=word)
            np.bitwise_xor(word, qcode[j], out=word)
        np.bitwise_count(word, out=bits)
        dist += bits
    return dist


def sign_scores(codes: np.ndarray, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The query's dot product with the set bits of each row's code: its sign vector, up to scale.

    Unlike Hamming distance this keeps the query's magnitudes, which ranks a shortlist much
    closer to cosine order for the cost of unpacking a thousand codes.
    """
    packed = np.ascontiguousarray(codes[:, rows].T).view(np.uint8)
    bits = np.unpackbits(packed, axis=1)[:, : query.shape[0]]
    return bits.astype(np.float32) @ query.astype(np.float32)


def smallest(dist: np.ndarray, k: int) -> np.ndarray:
    """Indices of `k` smallest distances (small non-negative integers), in no particular order.

    A histogram finds the cut-off distance in one pass, four times faster than argpartition
    on a shard's worth of Hamming distances; ties at the cut-off are taken in row order.
    """
    if k >= len(dist):
        return np.arange(len(dist))
    cut = int(np.searchsorted(np.cumsum(np.bincount(dist)), k))
    below = np.flatnonzero(dist < cut)
    return np.concatenate([below, np.flatnonzero(dist == cut)[: k - len(below)]])


@dataclass
class Shortlist:
    """A shard's nearest segments by sign score: comparable across shards, since every shard
    scores the same query against sign bits of the same model."""

    ids: np.ndarray  # segment ids
    scores: np.ndarray  # float32 sign scores, higher is nearer
    dim: int


def shortlist(conn: sqlite3.Connection, query: np.ndarray, model: str, *,
              speakers: list[int] | None = None, after: float | None = None,
              before: float | None = None, sessions: list[str] | None = None
              ) -> Shortlist | None:
    """The shard's SHORTLIST nearest segments to `query` that pass the filters, or None.

    Filters apply before the nearest are chosen, so "what did Bob say" searches Bob's segments.
    """
    sv = load(conn, model)
    if sv is None or len(sv.ids) == 0 or sv.dim != query.shape[0]:
        return None
    rows = _matching(sv, speakers, after, before, sessions)
    if rows is not None and len(rows) == 0:
        return None
    n = len(sv.ids) if rows is None else len(rows)
    if n > SHORTLIST:
        dist = hamming(sv.codes, _words(sign_code(query[None, :]))[0], rows)
        nearest = smallest(dist, SHORTLIST)
        rows = nearest if rows is None else rows[nearest]
    elif rows is None:
        rows = np.arange(n)
    return Shortlist(sv.ids[rows], sign_scores(sv.codes, rows, query), sv.dim)


def exact(conn: sqlite3.Connection, ids: list[int], query: np.ndarray, dim: int
          ) -> list[tuple[int, float]]:
    """(segment id, cosine) for `ids`, read from the shard by primary key."""
    if not ids:
        return []
    ids = sorted(ids)  # in id order the vectors are read in file order
    found = conn.execute(f"SELECT segment_id, vector FROM embedding WHERE segment_id IN "
                         f"({','.join('?' * len(ids))})", ids).fetchall()
    if not found:
        return []
    sims = from_blobs([r[1] for r in found], dim) @ query.astype(np.float32)
    return [(int(r[0]), float(sim)) for r, sim in zip(found, sims, strict=True)]


def best(lists: list[Shortlist | None], k: int = RESCORE) -> list[list[int]]:
    """Per shortlist, the ids among the `k` best sign scores of all of them together.

    The exact cosine is then read for `k` segments per question, however many shards (months,
    parts) the guild has: per-shard budgets made the cost grow with the number of files.
    """
    scores = [sl.scores for sl in lists if sl is not None and len(sl.ids)]
    if not scores:
        return [[] for _ in lists]
    joined = np.concatenate(scores)
    cut = -np.inf if len(joined) <= k else float(np.partition(joined, len(joined) - k)[-k])
    out, taken = [], 0
    for sl in lists:
        if sl is None or not len(sl.ids):
            out.append([])
            continue
        above = np.flatnonzero(sl.scores > cut)
        ties = np.flatnonzero(sl.scores == cut)
        keep = np.concatenate([above, ties[: max(0, k - taken - len(above))]])
        taken += len(keep)
        out.append(sl.ids[keep].tolist())
    return out


def search(conn: sqlite3.Connection, query: np.ndarray, model: str, limit: int, *,
           speakers: list[int] | None = None, after: float | None = None,
           before: float | None = None, sessions: list[str] | None = None
           ) -> list[tuple[int, float]]:
    """(segment id, cosine) of one shard's nearest segments to `query`, best first."""
    sl = shortlist(conn, query, model, speakers=speakers, after=after, before=before,
                   sessions=sessions)
    if sl is None:
        return []
    found = exact(conn, best([sl])[0], query, sl.dim)
    found.sort(key=lambda f: -f[1])
    return found[:limit]
