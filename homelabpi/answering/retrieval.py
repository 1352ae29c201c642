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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from homelabpi.answering import bm25, vectors
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


def fts_query(terms: list[str], op: str = "OR") -> str:
    """An FTS5 query joining `terms` by `op`; each quoted so user text can never be FTS5 syntax."""
    return f" {op} ".join(f'"{t}"' for t in terms)


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


def seg(row: sqlite3.Row, score: float = 0.0) -> Seg:
    return Seg(id=row[0], session=row[1], speaker=row[2], channel=row[3], start=row[4], end=row[5],
               text=row[6], clip=row[7], words=json.loads(row[8]) if row[8] else [], score=score,
               clip_start=row[9] if len(row) > 9 else None)


def _hydrate(conns: list[sqlite3.Connection], ranked: list[tuple[float, int, int]]
             ) -> list[tuple[Seg, int]]:
    """(score, shard, segment id), best first, as (Seg, shard).

    Rankers work on ids alone and only the winners are read in full: a row carries its words as
    JSON, and reading every shard's candidates cost more than ranking them.
    """
    wanted: dict[int, list[int]] = {}
    for _, shard, sid in ranked:
        wanted.setdefault(shard, []).append(sid)
    rows: dict[int, dict[int, sqlite3.Row]] = {}
    for shard, ids in wanted.items():
        found = conns[shard].execute(SELECT + f" WHERE s.id IN ({','.join('?' * len(ids))})",
                                     ids)
        rows[shard] = {r[0]: r for r in found}
    return [(seg(rows[shard][sid], score), shard) for score, shard, sid in ranked
            if sid in rows[shard]]


def search(conns: list[sqlite3.Connection], text: str, limit: int = 10) -> list[tuple[Seg, int]]:
    """Best segments for `text` across shards, best first, with the index of their shard."""
    return keyword(conns, content_terms(text), Filters(), limit)


# -- filters ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scope:
    """A question's filters as one shard applies them: in its own ids, only what still narrows."""

    speakers: tuple[int, ...] | None = None
    sessions: tuple[str, ...] | None = None
    after: float | None = None
    before: float | None = None


# The shard's time span. Segment starts are indexed; ends are not, but the indexer widens each
# session's ended_at to cover every segment it writes, so the latest one bounds them all.
_SPAN = ("SELECT (SELECT min(start) FROM segment), (SELECT max(start) FROM segment), "
         "(SELECT max(ended_at) FROM session)")


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

    def scope(self, conn: sqlite3.Connection) -> Scope | None:
        """What these filters leave of one shard, or None when they leave nothing.

        Shards are months, so a time filter rules out most of a guild's shards before any search
        runs, and needs no per-segment test in a shard that lies wholly inside its window; a
        speaker or session the shard never saw rules it out too.
        """
        if not self:
            return Scope()
        speakers = sessions = None
        if self.speakers:
            speakers = tuple(self.speaker_ids(conn) or ())
            if not speakers:
                return None
        if self.sessions:
            marks = ",".join("?" * len(self.sessions))
            sessions = tuple(r[0] for r in conn.execute(
                f"SELECT id FROM session WHERE id IN ({marks})", self.sessions))
            if not sessions:
                return None
        after, before = self.after, self.before
        if after is not None or before is not None:
            first, last, ended = conn.execute(_SPAN).fetchone()
            if first is None:
                return None  # no segments at all
            if before is not None and first >= before:
                return None
            if after is not None and ended is not None and max(ended, last) < after:
                return None
            if after is not None and first >= after:
                after = None  # every segment starts, so ends, at or after `after`
            if before is not None and last < before:
                before = None
        return Scope(speakers, sessions, after, before)


def scopes(conns: list[sqlite3.Connection], filters: Filters) -> list[Scope | None]:
    """`filters` applied to each shard (None: the shard cannot hold a match)."""
    return [filters.scope(c) for c in conns]


# -- BM25 ------------------------------------------------------------------------------------------
def _ranking(scope: Scope) -> tuple[str, list]:
    """The BM25 statement for a shard within `scope`: (sql, parameters between MATCH and LIMIT).

    The ranking runs on the FTS index and reads `segment` only for what a filter needs. A
    speaker or session filter probes that column's index (speaker_id or session_id, then the
    row id) for each match: SQLite would rather look the row up by id, but segment rows carry
    their words, and reading them made a speaker's ranking three times slower at 1,000 hours. A
    time filter joins `segment` per match, CROSS JOIN keeping the FTS index the outer loop.
    """
    sql = "SELECT segment_fts.rowid, bm25(segment_fts) AS rank FROM segment_fts"
    where, params = ["segment_fts MATCH ?"], []
    for column, wanted in (("speaker_id", scope.speakers), ("session_id", scope.sessions)):
        if wanted is not None:
            where.append(f"EXISTS (SELECT 1 FROM segment INDEXED BY segment_{column} WHERE "
                         f"{column} IN ({','.join('?' * len(wanted))}) "
                         "AND id = segment_fts.rowid)")
            params += wanted
    times, values = _times(scope)
    if times:
        sql += " CROSS JOIN segment s ON s.id = segment_fts.rowid"
        where += times
        params += values
    return f"{sql} WHERE {' AND '.join(where)} ORDER BY rank LIMIT ?", params


def _times(scope: Scope) -> tuple[list[str], list[float]]:
    """The time window as conditions on `segment s`, and their parameters."""
    where, params = [], []
    if scope.after is not None:
        where.append("s.end >= ?")
        params.append(scope.after)
    if scope.before is not None:
        where.append("s.start < ?")
        params.append(scope.before)
    return where, params


def _keeper(conn: sqlite3.Connection, scope: Scope) -> Callable[[list[int]], set[int]] | None:
    """Which of some segment ids `scope` lets through in this shard; None: all of them."""
    if scope == Scope():
        return None
    where, params = _times(scope)
    for column, wanted in (("speaker_id", scope.speakers), ("session_id", scope.sessions)):
        if wanted is not None:
            where.append(f"s.{column} IN ({','.join('?' * len(wanted))})")
            params += wanted

    def keep(ids: list[int]) -> set[int]:
        rows = conn.execute(f"SELECT s.id FROM segment s WHERE s.id IN "
                            f"({','.join('?' * len(ids))}) AND {' AND '.join(where)}",
                            [*ids, *params])
        return {r[0] for r in rows}

    return keep


def weighted_terms(conn: sqlite3.Connection, terms: list[str]) -> list[str]:
    """The terms worth matching in this shard: those it holds that BM25 gives weight.

    A term the shard never saw would empty an AND. A term in half or more of its segments gets
    FTS5's floor IDF (1e-6): it changes no ranking, only lengthens the posting lists to walk.
    When every term the shard holds is that common, they all stay.
    """
    if len(terms) == 1:
        return list(terms)  # nothing to choose: absent, it matches nothing; alone, it stays
    present = []
    for t in terms:
        df = conn.execute("SELECT count(*) FROM segment_fts WHERE segment_fts MATCH ?",
                          (fts_query([t]),)).fetchone()[0]
        if df:
            present.append((t, df))
    if not present:
        return []
    # max(id) is at least the number of indexed segments, so 2 df >= it means a floored IDF
    top = conn.execute("SELECT max(id) FROM segment").fetchone()[0] or 0
    return [t for t, df in present if 2 * df < top] or [t for t, _ in present]


def keyword(conns: list[sqlite3.Connection], terms: list[str], filters: Filters = Filters(),
            limit: int = CANDIDATES) -> list[tuple[Seg, int]]:
    """BM25 hits for `terms` that pass `filters`, best first, with their shard index.

    Segments holding every (weighted) term are ranked first, and the OR of the terms only when
    the whole guild has fewer than `limit` of those. Every segment a query matches gets scored,
    so the cost follows the posting lists: an OR of two words each in 8% of a month's segments
    scores 16% of them, their AND under 1%. A segment with all the words outscores one with
    some unless their IDFs differ a lot, so `limit` AND hits are the OR's best too, or nearly;
    with fewer, the OR ranks as it always did. FTS5 ranks an AND; one word or an OR, which can
    match a tenth of a shard, bm25.rank scores from the postings, with the same scores.

    BM25 is negated so higher is better; shards score with their own statistics, which is
    close enough to merge months of one guild.
    """
    return _keyword(conns, scopes(conns, filters), terms, limit)


def _keyword(conns: list[sqlite3.Connection], scoped: list[Scope | None], terms: list[str],
             limit: int) -> list[tuple[Seg, int]]:
    if not terms:
        return []
    plans = [(i, scope, weighted_terms(conns[i], terms)) for i, scope in enumerate(scoped)
             if scope is not None]
    plans = [plan for plan in plans if plan[2]]

    def rank(i: int, scope: Scope, live: list[str], op: str) -> list[tuple[int, float]]:
        if op == "OR" or len(live) == 1:
            found = bm25.rank(conns[i], live, limit, _keeper(conns[i], scope))
            if found is not None:
                return found
        sql, params = _ranking(scope)
        return [(r[0], -r[1])
                for r in conns[i].execute(sql, [fts_query(live, op), *params, limit])]

    ranked = {i: rank(i, scope, live, "AND") for i, scope, live in plans}
    if sum(map(len, ranked.values())) < limit:
        for i, scope, live in plans:
            if len(live) > 1:
                ranked[i] = rank(i, scope, live, "OR")
    merged = [(score, i, sid) for i, rows in ranked.items() for sid, score in rows]
    merged.sort(key=lambda h: -h[0])
    return _hydrate(conns, merged[:limit])


def dense(conns: list[sqlite3.Connection], qvec: np.ndarray, model: str,
          filters: Filters = Filters(), limit: int = CANDIDATES) -> list[tuple[Seg, int]]:
    """Nearest segments by cosine (as `score`) that pass `filters`, best first."""
    return _dense(conns, scopes(conns, filters), qvec, model, limit)


def _dense(conns: list[sqlite3.Connection], scoped: list[Scope | None], qvec: np.ndarray,
           model: str, limit: int) -> list[tuple[Seg, int]]:
    lists: list[vectors.Shortlist | None] = []
    for conn, scope in zip(conns, scoped, strict=True):
        lists.append(None if scope is None else vectors.shortlist(
            conn, qvec, model,
            speakers=None if scope.speakers is None else list(scope.speakers),
            after=scope.after, before=scope.before,
            sessions=None if scope.sessions is None else list(scope.sessions)))
    found: list[tuple[float, int, int]] = []
    for i, ids in enumerate(vectors.best(lists)):
        if ids:
            found += [(sim, sid, i) for sid, sim in vectors.exact(conns[i], ids, qvec,
                                                                   lists[i].dim)]
    found.sort(reverse=True)
    return _hydrate(conns, [(sim, i, sid) for sim, sid, i in found[:limit]])


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
    scoped = scopes(conns, filters)
    rankings = [_keyword(conns, scoped, terms, limit)]
    if qvec is not None:
        rankings.append(_dense(conns, scoped, qvec, model, limit))
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
