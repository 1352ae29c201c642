"""BM25 for queries that match much of a shard, scored in numpy from FTS5's own postings.

FTS5's bm25() reads each matching segment's length from its docsize table, one SQL step per
row: about half a microsecond, so one word in 8% of 450,000 segments (1,000 hours) takes 20 ms
to rank. The same scores follow from the word's postings, read as one string per shard through
an fts5vocab table, and the shard's segment lengths, read once and kept in memory like the
dense index (2 bytes a segment). The arithmetic is bm25()'s own, so the ranking is FTS5's.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from homelabpi.answering.vectors import shard_key

K1, B = 1.2, 0.75  # FTS5's bm25() defaults
# With a filter, segments are checked best first; past this many per shard the filter is too
# selective for that, and FTS5, which tests every match as it ranks, is the cheaper way.
CHECK_BUDGET = 400
TOKENIZE = "porter unicode61"  # segment_fts's tokenizer (index.schema)


@dataclass
class Lengths:
    """A shard's segment lengths in tokens, by segment id (0 where there is no segment)."""

    tokens: np.ndarray
    rows: int
    total: int


_cache: dict[str, tuple[tuple, Lengths]] = {}
_lock = threading.Lock()


def _varints(stream: bytes) -> np.ndarray:
    """SQLite varints laid end to end (7 bits a byte, high bit: more follow), decoded."""
    b = np.frombuffer(stream, dtype=np.uint8)
    last = np.flatnonzero(b < 0x80)
    first = np.concatenate([[0], last[:-1] + 1])
    if (last - first > 1).any():  # a segment of 16,384 tokens or more: not from speech
        out = []
        for a, z in zip(first, last, strict=True):
            v = 0
            for x in b[a:z + 1]:
                v = (v << 7) | (int(x) & 0x7F)
            out.append(v)
        return np.array(out, dtype=np.int64)
    value = b[last].astype(np.int64)
    two = last > first
    value[two] |= (b[first[two]].astype(np.int64) & 0x7F) << 7
    return value


def lengths(conn: sqlite3.Connection) -> Lengths | None:
    """The shard's segment lengths, as FTS5 counted them (cached until the file changes)."""
    key = shard_key(conn)
    if key is not None:
        with _lock:
            hit = _cache.get(key[0])
            if hit is not None and hit[0] == key[1]:
                return hit[1]
    try:
        ids, sizes = conn.execute("SELECT group_concat(id), group_concat(hex(sz), '') "
                                  "FROM segment_fts_docsize").fetchone()
    except sqlite3.OperationalError:  # no docsize table (columnsize=0): FTS5 must rank
        return None
    if not ids:
        return None
    rowids = np.array(ids.split(","), dtype=np.int64)
    sizes_ = _varints(bytes.fromhex(sizes))
    if len(sizes_) != len(rowids):  # more than one column: not the schema this reads
        return None
    tokens = np.zeros(int(rowids.max()) + 1, dtype=np.uint16)
    tokens[rowids] = np.minimum(sizes_, np.iinfo(np.uint16).max)
    found = Lengths(tokens, len(rowids), int(sizes_.sum()))
    if key is not None:
        with _lock:
            _cache[key[0]] = (key[1], found)
    return found


def forget() -> None:
    """Drop every cached shard's lengths (tests)."""
    with _lock:
        _cache.clear()


_tokenizer: sqlite3.Connection | None = None
_tokens: dict[str, str | None] = {}


def token(word: str) -> str | None:
    """What FTS5 indexes `word` as (porter stem and all), or None unless it is one token."""
    global _tokenizer
    with _lock:
        if word in _tokens:
            return _tokens[word]
        if _tokenizer is None:
            _tokenizer = sqlite3.connect(":memory:", check_same_thread=False)
            _tokenizer.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize='{TOKENIZE}')")
            _tokenizer.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        _tokenizer.execute("INSERT INTO t (x) VALUES (?)", (word,))
        got = [r[0] for r in _tokenizer.execute("SELECT term FROM v")]
        _tokenizer.execute("DELETE FROM t")
        if len(_tokens) < 100_000:
            _tokens[word] = got[0] if len(got) == 1 else None
        return got[0] if len(got) == 1 else None


def rank(conn: sqlite3.Connection, terms: list[str], limit: int,
         keep: Callable[[list[int]], set[int]] | None = None) -> list[tuple[int, float]] | None:
    """(segment id, score) of the best `limit` segments with any of `terms`, best first.

    Scores are bm25()'s, negated (higher is better), for the FTS5 query `"t1" OR "t2" ...`; each
    term counts once per time it is given, as a repeated phrase does there. `keep` says which of
    some segment ids pass a filter; it is asked about the best ones first, a few at a time. None
    when this shard must be ranked by FTS5 instead: a term that is not one token, rows newer
    than the lengths, or a filter that passes too few of the best.
    """
    tokens = [token(t) for t in terms]
    if not tokens or None in tokens:
        return None
    lens = lengths(conn)
    if lens is None:
        return None
    try:
        conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.segment_vocab "
                     "USING fts5vocab(main, segment_fts, 'instance')")
        postings = [conn.execute("SELECT group_concat(doc) FROM temp.segment_vocab "
                                 "WHERE term = ?", (tok,)).fetchone()[0] for tok in tokens]
    except sqlite3.OperationalError:  # e.g. no temp schema to put the vocab table in
        return None
    avgdl = lens.total / lens.rows
    docs, scores = [], []
    for found in postings:
        if not found:
            continue
        ids, tf = np.unique(np.array(found.split(","), dtype=np.int64), return_counts=True)
        if ids[-1] >= len(lens.tokens) or not lens.tokens[ids].all():
            return None  # indexed after the lengths were read
        idf = math.log((lens.rows - len(ids) + 0.5) / (len(ids) + 0.5))
        idf = idf if idf > 0 else 1e-6
        dl = lens.tokens[ids].astype(np.float64)
        docs.append(ids)
        scores.append(idf * (tf * (K1 + 1.0)) / (tf + K1 * (1 - B + B * dl / avgdl)))
    if not docs:
        return []
    ids, at = np.unique(np.concatenate(docs), return_inverse=True)
    total = np.bincount(at, weights=np.concatenate(scores))
    order = np.argsort(-total, kind="stable")
    if keep is None:
        best = order[:limit].tolist()
    else:
        best, done, step = [], 0, 4 * limit
        while len(best) < limit and done < len(order):
            if done >= CHECK_BUDGET:
                return None
            batch = order[done:done + step].tolist()
            passed = keep([int(ids[i]) for i in batch])
            best += [i for i in batch if int(ids[i]) in passed]
            done += len(batch)
            step *= 2
        best = best[:limit]
    return [(int(ids[i]), float(total[i])) for i in best]
