"""Keyword retrieval over a guild's shards: FTS5 BM25 hits grown into conversation passages.

A hit is one segment; its passage is the neighbouring segments of every speaker in the same
session, in time order, because an answer in a voice chat is usually spread over a reply or two.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC

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


def tokens(text: str) -> list[str]:
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

    def citation(self) -> dict:
        return {"speaker": self.speaker, "channel": self.channel, "session": self.session,
                "start": iso_epoch(self.start), "end": iso_epoch(self.end), "text": self.text,
                "clip": self.clip}


def iso_epoch(epoch: float) -> str:
    from datetime import datetime

    return iso(datetime.fromtimestamp(epoch, UTC))


_COLUMNS = """
SELECT s.id, s.session_id, sp.name AS speaker, ch.name AS channel, s.start, s.end, s.text,
       CASE WHEN c.audio_key != '' THEN c.audio_key ELSE c.key END AS clip, s.words"""
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
               text=row[6], clip=row[7], words=json.loads(row[8]) if row[8] else [], score=score)


def search(conns: list[sqlite3.Connection], text: str, limit: int = 10) -> list[tuple[Seg, int]]:
    """Best segments for `text` across shards, best first, with the index of their shard.

    BM25 is negated so higher is better; shards score with their own statistics, which is
    close enough to merge months of one guild.
    """
    terms = content_terms(text)
    if not terms:
        return []
    query = fts_query(terms)
    hits = [(seg(row, -row[9]), i) for i, conn in enumerate(conns)
            for row in conn.execute(_SEARCH, (query, limit))]
    hits.sort(key=lambda h: -h[0].score)
    return hits[:limit]


def passage(conn: sqlite3.Connection, hit: Seg) -> list[Seg]:
    """The hit and its neighbours of every speaker in the same session, in time order."""
    rows = conn.execute(
        SELECT + " WHERE s.session_id = ? AND s.start BETWEEN ? AND ? ORDER BY s.start, s.id",
        (hit.session, hit.start - PASSAGE_WINDOW_SECONDS, hit.end + PASSAGE_WINDOW_SECONDS),
    ).fetchall()
    segs = [seg(r) for r in rows]
    at = next((i for i, s in enumerate(segs) if s.id == hit.id), None)
    if at is None:
        return [hit]
    segs[at] = hit
    return segs[max(0, at - PASSAGE_NEIGHBOURS): at + PASSAGE_NEIGHBOURS + 1]
