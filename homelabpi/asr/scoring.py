"""Word error rate, for the tests and benchmarks that hold the speech engines to a bound."""

from __future__ import annotations

import re


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance in words: substitutions + deletions + insertions."""
    prev = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        cur = [i]
        for j, h in enumerate(hypothesis, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def wer(pairs: list[tuple[list[str], list[str]]]) -> float:
    """Corpus WER over (reference, hypothesis) pairs: total errors / total reference words."""
    errors = sum(word_errors(r, h) for r, h in pairs)
    return errors / max(1, sum(len(r) for r, _ in pairs))


# Whisper writes titles abbreviated; the LibriVox references spell them out.
_SPOKEN = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def normalize(words: list[str]) -> list[str]:
    """Lower case, punctuation gone, titles spelt out: what WER compares, for every engine."""
    out = []
    for w in words:
        for token in re.sub(r"[^\w' ]+", " ", w.lower()).split():
            token = token.strip("'")
            if token:
                out.append(_SPOKEN.get(token, token))
    return out
