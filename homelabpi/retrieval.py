"""Retrieval over a guild's shards: FTS5 BM25 and dense embeddings, fused, grown into passages.

A hit is one segment; its passage is the neighbouring segments of every speaker in the same
session, in time order, because an answer in a voice chat is usually spread over a reply or two.
BM25 finds the exact words (IPs, hostnames); embeddings find the paraphrases ("storage box" for
"NAS"). Their rankings are fused by reciprocal rank, which needs no score calibration between
two very different scorers.
"""

from __future__ import annotations

import bisect
import json
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from homelabpi import vectors
from homelabpi.transcripts import iso

STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more
most my myself no nor not now of off on once only or other our ours ourselves out over own same
she should so some such than that the their theirs them themselves then there these they this
those through to too under until up very was we were what when where which while who whom why will
with would you your yours yourself yourselves us ok okay yeah yes um uh hmm oh well like say said
says tell told talk talked mention mentioned think thought know knew anyone someone somebody thing
things get got let lets hey
""".split())
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
PASSAGE_WINDOW_SECONDS = 60.0
PASSAGE_NEIGHBOURS = 3
PASSAGE_MAX_CHARS = 1200  # ~300 tokens: one reader window, so striding is the exception
RRF_K = 60  # the constant from Cormack et al. (2009); damps the head of each ranking
CANDIDATES = 30  # per ranker, before fusion


def tokens(text: str) -> list[str]:
    """Lower-case words and numbers, the unit every lexical comparison uses."""
    return _WORD.findall(text.lower())


def stem(word: str) -> str:
    """A light suffix stripper, enough to match 'switches' with 'switch' when scoring coverage."""
    word = word.split("'")[0]
    for suffix in ("ations", "ation", "ings", "ing", "edly", "ed", "ies", "es", "s", "ly"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def content_terms(text: str) -> list[str]:
    """Question words that carry meaning, in order, without duplicates."""
    seen: dict[str, None] = {}
    for t in tokens(text):
        if t not in STOPWORDS and (len(t) > 1 or t.isdigit()):
            seen.setdefault(t.split("'")[0], None)
    return list(seen)


def fts_query(terms: list[str]) -> str:
    """An FTS5 OR query; every term quoted so user text can never be FTS5 syntax."""
    return " OR ".join(f'"{t}"' for t in terms)


@dataclass
class Seg:
    """A segment as retrieval sees it, with everything a citation needs."""

    id: int
    session: str
    speaker: str
    channel: str
    start: float
    end: float
    text: str
    clip: str
    words: list = field(default_factory=list, repr=False)
    score: float = 0.0
    clip_start: float | None = None

    def citation(self, start: float | None = None, end: float | None = None) -> dict:
        """The JSON citation; `start`/`end` narrow it to an answer's words when known."""
        return {"speaker": self.speaker, "channel": self.channel, "session": self.session,
                "start": iso_epoch(self.start if start is None else start),
                "end": iso_epoch(self.end if end is None else end), "text": self.text,
                "clip": self.clip}

    def word_spans(self) -> list[tuple[int, int, float, float]]:
        """(char start, char end, abs start, abs end) of each timed word found in `text`.

        Word times are seconds from the clip's start; the clip's start makes them absolute.
        Words the text does not contain (an edited transcript) are skipped, not guessed.
        """
        if not self.words:
            return []
        base = self.clip_start
        if base is None:  # segment.start is the clip start plus its first word's offset
            base = self.start - float(self.words[0].get("start", 0.0))
        low, out, at = self.text.lower(), [], 0
        for w in self.words:
            t = str(w.get("text", "")).lower()
            i = low.find(t, at) if t else -1
            if i < 0:
                continue
            out.append((i, i + len(t), base + float(w["start"]), base + float(w["end"])))
            at = i + len(t)
        return out

    def times_of(self, a: int, b: int) -> tuple[float, float]:
        """Absolute start and end of the words overlapping chars [a, b) of `text`."""
        inside = [(s, e) for (ca, cb, s, e) in self.word_spans() if ca < b and cb > a]
        if not inside:
            return self.start, self.end
        return inside[0][0], inside[-1][1]


def iso_epoch(epoch: float) -> str:
    return iso(datetime.fromtimestamp(epoch, UTC))


_COLUMNS = """
SELECT s.id, s.session_id, sp.name AS speaker, ch.name AS channel, s.start, s.end, s.text,
       CASE WHEN c.audio_key != '' THEN c.audio_key ELSE c.key END AS clip, s.words,
       c.started_at AS clip_start"""
_JOINS = """
JOIN speaker sp ON sp.id = s.speaker_id
JOIN channel ch ON ch.id = s.channel_id
JOIN clip c ON c.id = s.clip_id"""
SELECT = _COLUMNS + "\nFROM segment s" + _JOINS
_SEARCH = (
    "WITH m AS (SELECT rowid, bm25(segment_fts) AS rank FROM segment_fts "
    "WHERE segment_fts MATCH ? ORDER BY rank LIMIT ?)"
    + _COLUMNS + ", m.rank\nFROM m JOIN segment s ON s.id = m.rowid" + _JOINS + "\nORDER BY m.rank"
)


def seg(row: sqlite3.Row, score: float = 0.0) -> Seg:
    return Seg(id=row[0], session=row[1], speaker=row[2], channel=row[3], start=row[4], end=row[5],
               text=row[6], clip=row[7], words=json.loads(row[8]) if row[8] else [], score=score,
               clip_start=row[9] if len(row) > 9 else None)


def search(conns: list[sqlite3.Connection], text: str, limit: int = 10) -> list[tuple[Seg, int]]:
    """Best segments for `text` across shards, best first, with the index of their shard.

    BM25 is negated so higher is better; shards score with their own statistics, which is
    close enough to merge months of one guild.
    """
    terms = content_terms(text)
    if not terms:
        return []
    query = fts_query(terms)
    hits = [(seg(row, -row[10]), i) for i, conn in enumerate(conns)
            for row in conn.execute(_SEARCH, (query, limit))]
    hits.sort(key=lambda h: -h[0].score)
    return hits[:limit]


# -- filters ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    """Who and when a question is about; empty means everyone, any time."""

    speakers: tuple[str, ...] = ()  # names, matched case-insensitively
    after: float | None = None  # epoch seconds; a segment counts if it overlaps [after, before)
    before: float | None = None
    sessions: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.speakers or self.sessions or self.after is not None
                    or self.before is not None)

    def speaker_ids(self, conn: sqlite3.Connection) -> list[int] | None:
        if not self.speakers:
            return None
        marks = ",".join("?" * len(self.speakers))
        return [r[0] for r in conn.execute(
            f"SELECT id FROM speaker WHERE lower(name) IN ({marks})",
            [s.lower() for s in self.speakers])]

    def sql(self, conn: sqlite3.Connection) -> tuple[str, list]:
        """A WHERE fragment over `segment s` and its parameters."""
        parts, params = [], []
        ids = self.speaker_ids(conn)
        if ids is not None:
            parts.append(f"s.speaker_id IN ({','.join('?' * len(ids)) or 'NULL'})")
            params += ids
        if self.after is not None:
            parts.append("s.end >= ?")
            params.append(self.after)
        if self.before is not None:
            parts.append("s.start < ?")
            params.append(self.before)
        if self.sessions:
            parts.append(f"s.session_id IN ({','.join('?' * len(self.sessions))})")
            params += list(self.sessions)
        return " AND ".join(parts) or "1", params


_FILTERED_SEARCH = (
    "WITH m AS (SELECT f.rowid, bm25(segment_fts) AS rank FROM segment_fts f "
    "JOIN segment s ON s.id = f.rowid WHERE segment_fts MATCH ? AND {where} "
    "ORDER BY rank LIMIT ?)"
    + _COLUMNS + ", m.rank\nFROM m JOIN segment s ON s.id = m.rowid" + _JOINS + "\nORDER BY m.rank"
)


# Without filters the ranking runs on the FTS index alone; joining `segment` for every match
# before ranking costs several times more on large shards.
_UNFILTERED_SEARCH = (
    "WITH m AS (SELECT rowid, bm25(segment_fts) AS rank FROM segment_fts "
    "WHERE segment_fts MATCH ? ORDER BY rank LIMIT ?)"
    + _COLUMNS + ", m.rank\nFROM m JOIN segment s ON s.id = m.rowid" + _JOINS + "\nORDER BY m.rank"
)


def keyword(conns: list[sqlite3.Connection], terms: list[str], filters: Filters = Filters(),
            limit: int = CANDIDATES) -> list[tuple[Seg, int]]:
    """BM25 hits for `terms` that pass `filters`, best first, with their shard index."""
    if not terms:
        return []
    hits = []
    query = fts_query(terms)
    for i, conn in enumerate(conns):
        where, params = filters.sql(conn)
        if where == "1":
            rows = conn.execute(_UNFILTERED_SEARCH, [query, limit])
        else:
            rows = conn.execute(_FILTERED_SEARCH.format(where=where), [query, *params, limit])
        hits += [(seg(row, -row[10]), i) for row in rows]
    hits.sort(key=lambda h: -h[0].score)
    return hits[:limit]


def dense(conns: list[sqlite3.Connection], qvec: np.ndarray, model: str,
          filters: Filters = Filters(), limit: int = CANDIDATES) -> list[tuple[Seg, int]]:
    """Nearest segments by cosine (as `score`) that pass `filters`, best first."""
    found: list[tuple[float, int, int]] = []
    for i, conn in enumerate(conns):
        for sid, sim in vectors.search(
                conn, qvec, model, limit, speakers=filters.speaker_ids(conn),
                after=filters.after, before=filters.before,
                sessions=list(filters.sessions) or None):
            found.append((sim, sid, i))
    found.sort(reverse=True)
    found = found[:limit]
    out = []
    for sim, sid, i in found:
        row = conns[i].execute(SELECT + " WHERE s.id = ?", (sid,)).fetchone()
        if row is not None:
            out.append((seg(row, sim), i))
    return out


@dataclass
class Hit:
    """A segment after fusion: its RRF score and what each ranker thought of it."""

    seg: Seg
    shard: int
    fused: float
    bm25_rank: int | None = None
    dense_rank: int | None = None
    similarity: float | None = None


def fuse(rankings: list[list[tuple[Seg, int]]], k: int = RRF_K) -> list[Hit]:
    """Reciprocal rank fusion: score = sum over rankers of 1 / (k + rank), rank from 1."""
    hits: dict[tuple[int, int], Hit] = {}
    for which, ranking in enumerate(rankings):
        for rank, (s, shard) in enumerate(ranking, 1):
            h = hits.setdefault((shard, s.id), Hit(s, shard, 0.0))
            h.fused += 1.0 / (k + rank)
            if which == 0:
                h.bm25_rank = rank
            else:
                h.dense_rank, h.similarity = rank, s.score
    return sorted(hits.values(), key=lambda h: -h.fused)


def hybrid(conns: list[sqlite3.Connection], terms: list[str], qvec: np.ndarray | None = None,
           model: str = "", filters: Filters = Filters(), limit: int = CANDIDATES) -> list[Hit]:
    """BM25 and (when a query vector is given) dense rankings, fused by rank."""
    rankings = [keyword(conns, terms, filters, limit)]
    if qvec is not None:
        rankings.append(dense(conns, qvec, model, filters, limit))
    return fuse(rankings)


# -- passages --------------------------------------------------------------------------------------
@dataclass
class Passage:
    """Neighbouring segments as one text ("Bob: …" lines) that maps any span back to them."""

    segs: list[Seg]
    hits: list[Hit] = field(default_factory=list)
    shard: int = 0
    text: str = ""
    spans: list[tuple[int, int, int]] = field(default_factory=list)  # (line, text, end) chars

    def __post_init__(self) -> None:
        lines, spans, at = [], [], 0
        for s in self.segs:
            label = f"{s.speaker}: "
            spans.append((at, at + len(label), at + len(label) + len(s.text)))
            lines.append(label + s.text)
            at += len(label) + len(s.text) + 1
        self.text = "\n".join(lines)
        self.spans = spans

    @property
    def score(self) -> float:
        return max((h.fused for h in self.hits), default=0.0)

    @property
    def similarity(self) -> float:
        return max((h.similarity or 0.0 for h in self.hits), default=0.0)

    def ids(self) -> set[int]:
        return {s.id for s in self.segs}

    def locate(self, a: int, b: int) -> tuple[int, int, int]:
        """(segment index, start, end) in that segment's text for chars [a, b) of `text`.

        A span that runs into the next line is cut at the end of its first segment; a span
        inside a speaker label ("Bob: ") maps to that segment's whole text.
        """
        i = max(0, bisect.bisect_right([sp[0] for sp in self.spans], a) - 1)
        line, body, end = self.spans[i]
        if a < body:  # the span starts in the label
            return i, 0, len(self.segs[i].text) if b <= body else min(b, end) - body
        return i, a - body, min(b, end) - body


def _window(conn: sqlite3.Connection, hit: Seg) -> tuple[list[Seg], int]:
    rows = conn.execute(
        SELECT + " WHERE s.session_id = ? AND s.start BETWEEN ? AND ? ORDER BY s.start, s.id",
        (hit.session, hit.start - PASSAGE_WINDOW_SECONDS, hit.end + PASSAGE_WINDOW_SECONDS),
    ).fetchall()
    segs = [seg(r) for r in rows]
    at = next((i for i, s in enumerate(segs) if s.id == hit.id), None)
    if at is None:
        return [hit], 0
    segs[at] = hit
    return segs, at


def passage(conn: sqlite3.Connection, hit: Seg) -> list[Seg]:
    """The hit and its neighbours of every speaker in the same session, in time order.

    Windows around nearby hits overlap, so a reply is never cut off from its question; the
    window shrinks from the far side until it fits `PASSAGE_MAX_CHARS`.
    """
    segs, at = _window(conn, hit)
    lo, hi = max(0, at - PASSAGE_NEIGHBOURS), min(len(segs), at + PASSAGE_NEIGHBOURS + 1)
    size = sum(len(s.text) + len(s.speaker) + 3 for s in segs[lo:hi])
    while size > PASSAGE_MAX_CHARS and hi - lo > 1:
        # drop whichever end is further from the hit
        if at - lo >= hi - 1 - at and lo < at:
            size -= len(segs[lo].text) + len(segs[lo].speaker) + 3
            lo += 1
        elif hi - 1 > at:
            hi -= 1
            size -= len(segs[hi].text) + len(segs[hi].speaker) + 3
        else:
            break
    return segs[lo:hi]


def passages(conns: list[sqlite3.Connection], hits: list[Hit], limit: int = 5) -> list[Passage]:
    """Passages for the best hits, best first; a hit inside an earlier passage joins it."""
    out: list[Passage] = []
    for h in hits:
        owner = next((p for p in out if p.shard == h.shard and h.seg.id in p.ids()), None)
        if owner is not None:
            owner.hits.append(h)
            continue
        if len(out) >= limit:
            continue
        segs = passage(conns[h.shard], h.seg)
        for s in segs:  # keep the hit's own object (it carries its score)
            if s.id == h.seg.id:
                s.score = h.seg.score
        out.append(Passage(segs, [h], h.shard))
    return out
