"""`ask` latency over 100 hours of one guild's transcripts (target: p95 under 200 ms, loaded).

Builds a synthetic corpus (hour-long sessions of ~5 s segments, several speakers, Zipfian
home-lab vocabulary, planted facts) and indexes it into month shards with the real indexer.
Segment embeddings come from a fast stand-in in the real model's space (see
`corpus.WordMeanEmbedder`; `--real-embeddings` uses the model for every segment, which takes
tens of minutes). Then ~200 questions go through the answer function in-process
(`invoke("answer", ...)`: opening the guild's shards, question parsing, the real embedding of
the question, BM25 + dense retrieval, the answer, and the query log written to the store), after
a warm-up that loads the models and the in-memory dense index. Questions mix planted facts
(answerable), frequent vocabulary (many hits: the expensive case) and made-up words
(unanswerable). The function's own `latency_ms` (from the query log) gives the split between
answering and the work around it.

    .venv/bin/python bench/ask_latency.py [--quick] [--hours N] [--questions N]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import datetime
from pathlib import Path

from corpus import Corpus, Vocabulary, WordMeanEmbedder, facts, nonsense, percentile, table

from homelabpi import embeddings
from homelabpi.auth import auth_header
from homelabpi.functions import invoke
from homelabpi.index.indexer import index_transcript
from homelabpi.runtime import Runtime
from homelabpi.settings import Settings
from homelabpi.transcripts import parse_time

GUILD = "bench-guild"
TARGET_P95_MS = 200.0
WARM_UP = 20
VOCAB_QUESTIONS = [
    "what did we decide about the {x} and the {y}?",
    "when did {who} last talk about {x} {y}?",
    "why is the {x} {y} so slow?",
    "who set up the {x} on the {y} {z}?",
]
UNKNOWN_QUESTIONS = [
    "what did we decide about the {x} {n}?",
    "did anyone fix the {n} {m}?",
    "where does the {n} {x} live?",
]


def build(rt: Runtime, corpus: Corpus, real_embeddings: bool) -> dict:
    t0 = time.perf_counter()
    embedder = embeddings.get(rt.settings)
    if embedder is not None and not real_embeddings:
        embedder = WordMeanEmbedder(embedder, Vocabulary.load())
    clips = segments = 0
    for key, etag, doc in corpus.documents():
        index_transcript(rt.shards, key, etag, doc, embedder=embedder)
        clips += 1
        segments += len(doc["segments"])
    rt.shards.close()
    paths = rt.shard_paths(GUILD)
    kind = ("none" if embedder is None else
            "all-MiniLM-L6-v2" if real_embeddings else "word-mean stand-in")
    return {"seconds": time.perf_counter() - t0, "clips": clips, "segments": segments,
            "shards": len(paths), "bytes": sum(p.stat().st_size for p in paths),
            "embeddings": kind}


def questions(corpus: Corpus, count: int, seed: int) -> list[tuple[str, str | None]]:
    """(question, planted statement or None), shuffled: facts, vocabulary, unknown words."""
    rng = random.Random(seed)
    mid = Vocabulary.load().words[40:2000]  # frequent enough to hit many segments
    asked: list[tuple[str, str | None]] = [(f.question, f.statement) for f in corpus.facts]
    while len(asked) < count:
        slots = {"x": rng.choice(mid), "y": rng.choice(mid), "z": rng.choice(mid),
                 "who": rng.choice(["alice", "bob", "erin"]), "n": nonsense(rng),
                 "m": nonsense(rng)}
        pool = VOCAB_QUESTIONS if len(asked) % 2 else UNKNOWN_QUESTIONS
        asked.append((rng.choice(pool).format(**slots), None))
    rng.shuffle(asked)
    return asked[:count]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 hours, 60 questions")
    ap.add_argument("--hours", type=int, help="hours of transcripts (default 100)")
    ap.add_argument("--questions", type=int, help="timed questions (default 200)")
    ap.add_argument("--real-embeddings", action="store_true",
                    help="embed every segment with the model (slow)")
    args = ap.parse_args()
    hours = args.hours or (10 if args.quick else 100)
    count = args.questions or (60 if args.quick else 200)

    with tempfile.TemporaryDirectory(prefix="homelabpi-bench-") as tmp:
        rt = Runtime(Settings(data_dir=Path(tmp)))
        corpus = Corpus(GUILD, hours, facts(max(8, min(80, count * 2 // 5))))
        built = build(rt, corpus, args.real_embeddings)
        headers = auth_header()

        def ask(question: str) -> tuple[float, dict]:
            body = json.dumps({"op": "ask", "guild": GUILD, "question": question}).encode()
            t0 = time.perf_counter()
            status, doc = invoke("answer", body, headers, rt)
            elapsed = (time.perf_counter() - t0) * 1000
            if status != 200:
                raise SystemExit(f"answer failed ({status}): {doc}")
            return elapsed, doc

        t0 = time.perf_counter()
        for question, _ in questions(corpus, WARM_UP, seed=99):
            ask(question)
        warm_up = time.perf_counter() - t0
        timed = questions(corpus, count, seed=5)
        started = datetime.now().astimezone()
        invoke_ms, exact, cited, modes = [], 0, 0, {}
        for question, statement in timed:
            elapsed, doc = ask(question)
            invoke_ms.append(elapsed)
            modes[doc["mode"]] = modes.get(doc["mode"], 0) + 1
            if statement is not None:
                exact += statement in doc["answer"]
                cited += any(c["text"] == statement for c in doc["citations"])
        logged = [json.loads(rt.store.get(o.key)) for o in rt.store.list("queries/")]
        inner_ms = [q["latency_ms"] for q in logged if parse_time(q["asked_at"]) >= started]

    n_facts = sum(s is not None for _, s in timed)
    table(f"corpus: {hours} h of transcripts for one guild", [
        ("sessions / clips / segments", f"{hours} / {built['clips']} / {built['segments']}", ""),
        ("shards (months) / size", f"{built['shards']} / {built['bytes'] / 2**20:.0f} MB", ""),
        ("segment embeddings", built["embeddings"], ""),
        ("build time (generate + embed + index)", f"{built['seconds']:.1f} s "
         f"({built['segments'] / built['seconds']:.0f} segments/s)", ""),
    ])
    p95 = percentile(invoke_ms, 95)
    table(f"ask latency: {len(timed)} questions after {WARM_UP} warm-up ({warm_up:.1f} s)", [
        ("invoke('answer') p50", f"{percentile(invoke_ms, 50):.1f} ms", ""),
        ("invoke('answer') p95", f"{p95:.1f} ms", f"< {TARGET_P95_MS:.0f} ms"),
        ("invoke('answer') max", f"{max(invoke_ms):.1f} ms", ""),
        ("latency_ms logged by the function p50 / p95",
         f"{percentile(inner_ms, 50):.0f} / {percentile(inner_ms, 95):.0f} ms", ""),
        ("answer modes", ", ".join(f"{k} {v}" for k, v in sorted(modes.items())), ""),
        ("planted facts: answered / cited", f"{exact} / {cited} of {n_facts}", "(context)"),
    ])
    print(f"\n{'meets' if p95 < TARGET_P95_MS else 'MISSES'} the p95 target")


if __name__ == "__main__":
    main()
