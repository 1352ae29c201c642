"""`ask` latency over 100 hours of one guild's transcripts (target: p95 under 200 ms, loaded).

Builds a synthetic corpus (hour-long sessions of ~5 s segments, several speakers, Zipfian
home-lab vocabulary, planted facts) and indexes it into month shards with the real indexer.
Segment embeddings come from a fast stand-in in the real model's space (see
`corpus.WordMeanEmbedder`; `--real-embeddings` uses the model for every segment, about ten
minutes more on two cores). Then ~200 questions go through the answer function in-process
(`invoke("answer", ...)`: opening the guild's shards, question parsing, the real embedding of
the question, BM25 + dense retrieval, the answer, and the query log written to the store), after
a warm-up that loads the models and the in-memory dense index. Questions mix planted facts
(answerable), frequent vocabulary (many hits: the expensive case) and made-up words
(unanswerable). CPU time per question is printed beside wall time: when the machine is busy,
wall time grows and the two part. `--busy N` adds N busy-looping processes while timing, as a
Pi transcribing in the background would. HOMELABPI_* settings in the environment apply (e.g.
HOMELABPI_TORCH_THREADS), except the data directory, which is temporary.

    .venv/bin/python bench/ask_latency.py [--quick] [--hours N] [--questions N] [--busy N]
                                          [--keep DIR] [--real-embeddings]

`--keep DIR` builds the index in DIR and leaves it there; a later run with the same DIR and
`--hours` reuses it and goes straight to the questions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from corpus import (
    Corpus,
    Vocabulary,
    WordMeanEmbedder,
    facts,
    machine,
    nonsense,
    percentile,
    table,
)

from homelabpi.answering import embeddings
from homelabpi.auth import auth_header
from homelabpi.functions import invoke
from homelabpi.index.indexer import index_transcript
from homelabpi.runtime import Runtime
from homelabpi.settings import Settings

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
    """Index the corpus into the runtime's shards (or reuse a kept one); sizes and timings."""
    marker = rt.settings.data_dir / "bench-corpus.json"
    if marker.exists():
        built = json.loads(marker.read_text())
        if built["hours"] != corpus.hours:
            raise SystemExit(f"{marker.parent} holds a {built['hours']} h corpus, not "
                             f"{corpus.hours} h; use another --keep directory")
        return {**built, "kind": built["kind"] + "; reused"}
    t0 = time.perf_counter()
    embedder = embeddings.get(rt.settings)
    kind = "none (embeddings off)" if embedder is None else "all-MiniLM-L6-v2, every segment"
    if embedder is not None and not real_embeddings:
        embedder = WordMeanEmbedder(embedder, Vocabulary.load())
        kind = "word-mean stand-in (model for facts and questions)"
    t1 = time.perf_counter()
    clips = segments = 0
    for key, etag, doc in corpus.documents():
        index_transcript(rt.shards, key, etag, doc, embedder=embedder)
        clips += 1
        segments += len(doc["segments"])
    rt.shards.close()
    paths = rt.shard_paths(GUILD)
    built = {"hours": corpus.hours, "model": t1 - t0, "index": time.perf_counter() - t1,
             "clips": clips, "segments": segments, "shards": len(paths), "kind": kind,
             "bytes": sum(p.stat().st_size for p in paths)}
    marker.write_text(json.dumps(built))
    return built


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


@contextmanager
def busy(n: int):
    """N processes spinning on a CPU each, stopped on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 hours, 60 questions")
    ap.add_argument("--hours", type=int, help="hours of transcripts (default 100)")
    ap.add_argument("--questions", type=int, help="timed questions (default 200)")
    ap.add_argument("--busy", type=int, default=0, help="busy processes while timing")
    ap.add_argument("--real-embeddings", action="store_true",
                    help="embed every segment with the model (slow)")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="build the index in DIR and keep it (reused when already there)")
    args = ap.parse_args()
    hours = args.hours or (10 if args.quick else 100)
    count = args.questions or (60 if args.quick else 200)
    print(f"machine: {machine()}")

    with tempfile.TemporaryDirectory(prefix="homelabpi-bench-") as tmp:
        data_dir = args.keep or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        settings = dataclasses.replace(Settings.from_env(), data_dir=data_dir, gateway=None,
                                       s3_endpoint=None)
        rt = Runtime(settings)
        corpus = Corpus(GUILD, hours, facts(min(80, max(8, hours * 4 // 5))))
        built = build(rt, corpus, args.real_embeddings)
        headers = auth_header()

        def ask(question: str) -> tuple[float, float, dict]:
            body = json.dumps({"op": "ask", "guild": GUILD, "question": question}).encode()
            w0, c0 = time.perf_counter(), time.process_time()
            status, doc = invoke("answer", body, headers, rt)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            if status != 200:
                raise SystemExit(f"answer failed ({status}): {doc}")
            return wall * 1000, cpu * 1000, doc

        logged_before = sum(1 for _ in rt.store.list("queries/"))
        t0 = time.perf_counter()
        for question, _ in questions(corpus, WARM_UP, seed=99):
            ask(question)
        warm_up = time.perf_counter() - t0
        timed = questions(corpus, count, seed=5)
        wall_ms, cpu_ms, modes, exact, cited = [], [], {}, 0, 0
        with busy(args.busy):
            for question, statement in timed:
                wall, cpu, doc = ask(question)
                wall_ms.append(wall)
                cpu_ms.append(cpu)
                modes[doc["mode"]] = modes.get(doc["mode"], 0) + 1
                if statement is not None:
                    exact += statement in doc["answer"]
                    cited += any(c["text"] == statement for c in doc["citations"])
        logged = sum(1 for _ in rt.store.list("queries/")) - logged_before

    n_facts = sum(s is not None for _, s in timed)
    table(f"corpus: {hours} h of transcripts for one guild", [
        ("sessions / clips / segments / facts",
         f"{hours} / {built['clips']} / {built['segments']} / {len(corpus.facts)}", ""),
        ("shards (months) / size", f"{built['shards']} / {built['bytes'] / 2**20:.0f} MB", ""),
        ("segment embeddings", built["kind"], ""),
        ("build: load model + embed vocabulary", f"{built['model']:.1f} s", ""),
        ("build: generate + index", f"{built['index']:.1f} s "
         f"({built['segments'] / built['index']:.0f} segments/s)", ""),
    ])
    p95 = percentile(wall_ms, 95)
    load = f", {args.busy} busy processes" if args.busy else ""
    table(f"ask latency: {len(timed)} questions after {WARM_UP} warm-up ({warm_up:.1f} s), "
          f"model threads {settings.torch_threads}{load}", [
              ("invoke('answer') wall p50", f"{percentile(wall_ms, 50):.1f} ms", ""),
              ("invoke('answer') wall p95", f"{p95:.1f} ms", f"< {TARGET_P95_MS:.0f} ms"),
              ("invoke('answer') wall max", f"{max(wall_ms):.1f} ms", ""),
              ("CPU per question p50 / p95", f"{percentile(cpu_ms, 50):.1f} / "
               f"{percentile(cpu_ms, 95):.1f} ms", ""),
              ("answer modes", ", ".join(f"{k} {v}" for k, v in sorted(modes.items())), ""),
              ("planted facts: answered / cited", f"{exact} / {cited} of {n_facts}",
               "(context)"),
              ("query logs stored", str(logged), str(WARM_UP + len(timed))),
          ])
    print(f"\nmachine after: {machine()}")
    print(f"{'meets' if p95 < TARGET_P95_MS else 'MISSES'} the p95 target")


if __name__ == "__main__":
    main()
