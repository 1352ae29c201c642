"""Question → answer with citations, from one guild's shards only.

Without a reader model the answer is the best-matching sentence of the best passage, cited, and
the result says so (`mode: "passage"`). When too little of the question is found the answer says
it could not find it rather than guessing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from homelabpi.retrieval import Seg, content_terms, passage, search, stem, tokens

NOT_FOUND = "I could not find that in the recordings."
CANDIDATES = 20
# Share of the question's content words a passage must contain before we answer from it.
MIN_COVERAGE = 0.5


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


def answer(conns: list[sqlite3.Connection], question: str) -> Answer:
    terms = {stem(t) for t in content_terms(question)}
    if not terms:
        return Answer(NOT_FOUND, 0.0, mode="not-found")
    best: tuple[float, float, list[Seg]] | None = None
    seen: set[int] = set()
    for hit, shard in search(conns, question, CANDIDATES):
        if hit.id in seen:
            continue
        segs = passage(conns[shard], hit)
        seen.update(s.id for s in segs)
        covered = terms & set().union(*(_stems(s.text) for s in segs))
        coverage = len(covered) / len(terms)
        key = (coverage, hit.score)
        if best is None or key > best[:2]:
            best = (coverage, hit.score, segs)
    if best is None or best[0] < MIN_COVERAGE:
        return Answer(NOT_FOUND, 0.0 if best is None else best[0] / 2, mode="not-found")
    coverage, _, segs = best
    # Best citation first: the segment holding most of the question, then its neighbours by
    # how much of the question they hold, ties in time order.
    ranked = sorted(segs, key=lambda s: (-len(terms & _stems(s.text)), -s.score, s.start))
    top = ranked[0]
    return Answer(
        answer=top.text,
        confidence=(coverage + len(terms & _stems(top.text)) / len(terms)) / 2,
        citations=[s.citation() for s in ranked],
    )
