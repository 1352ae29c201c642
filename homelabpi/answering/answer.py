"""Question → answer with citations, from one guild's shards only.

Retrieval is hybrid (BM25 + embeddings, fused by rank) over conversation passages. With a reader
model the answer is the span it extracts from the top passages (`mode: "reader"`); without one
it is the best-matching sentence of the best passage (`mode: "passage"`). Either way, when the
evidence is too weak the answer says it could not find it (`mode: "not-found"`) rather than
guessing, and the best citation comes first.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime

from homelabpi.answering import questions, retrieval
from homelabpi.answering.questions import Question
from homelabpi.answering.retrieval import Passage, Seg, stem, tokens

NOT_FOUND = "I could not find that in the recordings."
CANDIDATES = 20
PASSAGES = 5  # passages considered in passage mode
READ_PASSAGES = 3  # passages the reader reads
# Share of the question's content words a passage must contain before we answer from it...
MIN_COVERAGE = 0.5
# ...unless its meaning is this close (cosine, all-MiniLM-L6-v2) to the question's.
MIN_SIMILARITY = 0.6
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")  # not the dots inside 192.168.1.50
_WANTS_NUMBER = re.compile(r"\b(ip|address|port|version|how many|how much|what time|when|"
                           r"number|vlan|subnet|size|capacity|version)\b", re.I)
_WHO = re.compile(r"^\s*(who|whose|which of us)\b", re.I)
_ASKING = {stem(w) for w in questions.ASKING}


@dataclass
class Answer:
    answer: str
    confidence: float
    citations: list[dict] = field(default_factory=list)
    mode: str = "passage"

    def as_dict(self) -> dict:
        return {"answer": self.answer, "confidence": round(self.confidence, 3),
                "citations": self.citations, "mode": self.mode}


def _stems(text: str) -> set[str]:
    return {stem(t) for t in tokens(text)}


def guild_speakers(conns: list[sqlite3.Connection]) -> list[str]:
    """Every speaker name in the guild's shards (what a question's names are matched to)."""
    return sorted({r[0] for c in conns for r in c.execute("SELECT DISTINCT name FROM speaker")})


def guild_sessions(conns: list[sqlite3.Connection]) -> list[tuple[str, float]]:
    """(session id, started_at) for "in the last session"."""
    return [(r[0], r[1]) for c in conns for r in c.execute("SELECT id, started_at FROM session")]


def understand(conns: list[sqlite3.Connection], text: str, *, now: datetime | None = None,
               tz: str = "UTC", asker: str = "", previous: dict | None = None) -> Question:
    """The question with its filters, read against this guild's speakers and sessions."""
    return questions.parse(text, speakers=guild_speakers(conns), sessions=guild_sessions(conns),
                           now=now, tz=tz, asker=asker, previous=previous)


def answer(conns: list[sqlite3.Connection], question: str | Question, *, embedder=None,
           reader=None, min_score: float = 0.2, now: datetime | None = None) -> Answer:
    """Answer from these shards. `embedder`/`reader` None: BM25 only / passage mode."""
    q = question if isinstance(question, Question) else understand(conns, question, now=now)
    terms = q.terms
    if not terms and not (q.filters and embedder is not None):
        return Answer(NOT_FOUND, 0.0, mode="not-found")
    qvec = embedder.encode_one(q.topic or q.text) if embedder is not None else None
    hits = retrieval.hybrid(conns, terms, qvec, getattr(embedder, "name", ""), q.filters,
                            CANDIDATES)
    found = retrieval.passages(conns, hits, PASSAGES)
    if not found:
        return Answer(NOT_FOUND, 0.0, mode="not-found")
    if reader is not None:
        return _read(q, found[:READ_PASSAGES], reader, min_score)
    return _best_sentence(q, found, {stem(t) for t in terms})


# -- passage mode ----------------------------------------------------------------------------------
def _sentences(text: str) -> list[tuple[int, int]]:
    """Char spans of the sentences in `text` (ASR text has no punctuation: one sentence)."""
    cuts = [0] + [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    spans = [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if text[a:b].strip()]
    out = []
    for a, b in spans:  # trim whitespace so spans map onto words exactly
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        out.append((a, b))
    return out or [(0, len(text))]


def _coverage(terms: set[str], have: set[str]) -> float:
    """Share of the question found in `have`, counting only topic words when there are any.

    "What is the printer's IP?" must not be answered by any passage that mentions an IP: the
    asking words (IP, port, time) say what kind of answer is wanted, not what it is about.
    """
    topical = terms - _ASKING
    pool = topical or terms
    return len(pool & have) / len(pool) if pool else 0.0


def _overlap(terms: set[str], text: str) -> float:
    have = _stems(text)
    return len((terms - _ASKING) & have) + 0.5 * len(terms & _ASKING & have)


def _best_sentence(q: Question, found: list[Passage], terms: set[str]) -> Answer:
    def passage_key(item: tuple[int, Passage]) -> float:
        rank, p = item
        return _coverage(terms, _stems(p.text)) + 0.5 * p.similarity + 0.1 / (rank + 1)

    rank, best = max(enumerate(found), key=passage_key)
    coverage = _coverage(terms, _stems(best.text))
    if coverage < MIN_COVERAGE and best.similarity < MIN_SIMILARITY:
        return Answer(NOT_FOUND, max(coverage, best.similarity) / 2, mode="not-found")
    wanted = {s.lower() for s in q.filters.speakers}
    pool = [s for s in best.segs if s.speaker.lower() in wanted] or best.segs
    hit_ids = {h.seg.id: h for h in best.hits}
    wants_number = bool(_WANTS_NUMBER.search(q.topic))

    def sentence_key(item: tuple[Seg, tuple[int, int]]) -> tuple:
        s, (a, b) = item
        text = s.text[a:b]
        bonus = 0.5 if wants_number and re.search(r"\d", text) else 0.0
        hit = hit_ids.get(s.id)
        return (_overlap(terms, text) + bonus + (0.3 if hit else 0.0), hit.fused if hit else 0.0,
                -s.start)

    top, (a, b) = max(((s, sp) for s in pool for sp in _sentences(s.text)), key=sentence_key)
    if top.text[a:b].rstrip().endswith("?"):
        # The best match is someone asking it; in a conversation the answer is the reply.
        at = best.segs.index(top)
        reply = next((s for s in best.segs[at + 1:] if s.speaker != top.speaker), None)
        if reply is not None and (not wanted or reply.speaker.lower() in wanted):
            top, (a, b) = reply, _sentences(reply.text)[0]
    sentence = top.text[a:b]
    lexical = (coverage + min(1.0, _overlap(terms, sentence) / max(1, len(terms)))) / 2
    rest = sorted((s for s in best.segs if s.id != top.id),
                  key=lambda s: (-_overlap(terms, s.text), s.start))
    text = f"{top.speaker}: {sentence}" if _WHO.match(q.text) else sentence
    return Answer(answer=text, confidence=max(lexical, best.similarity),
                  citations=[top.citation(*top.times_of(a, b))] + [s.citation() for s in rest])


# -- reader mode -----------------------------------------------------------------------------------
def _read(q: Question, found: list[Passage], reader, min_score: float) -> Answer:
    asked = q.topic if q.follow_up else q.text
    spans = reader.read(asked, [p.text for p in found])
    if not spans or spans[0].score < min_score or not spans[0].answerable:
        score = spans[0].score if spans else 0.0
        return Answer(NOT_FOUND, score, mode="not-found")
    span = spans[0]
    p = found[span.context]
    i, a, b = p.locate(span.start, span.end)
    top = p.segs[i]
    in_label = span.end <= p.spans[i][1]
    text = top.speaker if in_label else top.text[a:b].strip()
    rest = [s.citation() for s in p.segs if s.id != top.id]
    return Answer(answer=text, confidence=span.score,
                  citations=[top.citation(*top.times_of(a, b))] + rest, mode="reader")
