"""BM25 at scale: AND before OR, terms that cannot help, and shards a filter rules out.

Each test shows the plain OR ranking would give a different answer, so it fails if the
behaviour it covers breaks rather than passing by coincidence on a small corpus.
"""

from __future__ import annotations

import numpy as np
import pytest

from homelabpi.answering import embeddings, retrieval, vectors
from homelabpi.answering.retrieval import Filters
from homelabpi.index import indexer
from homelabpi.index.shards import Shards
from homelabpi.transcripts import parse_time

NOV = "2026-11-10T19:00:00Z"
DEC = "2026-12-05T19:00:00Z"
# November: three segments with both words, short ones with one word that BM25 likes, and
# enough talk about the lab that "lab" is in over half of the month's segments.
ALICE_NOV = ["grafana port is three thousand in the lab", "the lab grafana port moved again",
             "lab note grafana port stays", "port port port", "grafana grafana",
             "prometheus scrapes grafana"] + [f"lab {w} is fine" for w in
                                              ("power", "fan", "door", "rack", "ups", "shelf",
                                               "light", "cable", "desk", "chair")]
BOB_DEC = ["grafana port changed in december", "december grafana port check"]


def _doc(session: str, speaker: str, started: str, lines: list[str]) -> dict:
    segs = []
    for n, text in enumerate(lines):
        off = 10.0 * n
        words = [{"text": w, "start": off + i * 0.5, "end": off + i * 0.5 + 0.4}
                 for i, w in enumerate(text.split())]
        segs.append({"speaker": speaker, "start": off, "end": words[-1]["end"], "text": text,
                     "words": words, "confidence": 1.0})
    return {"version": 1, "guild": "g", "session": session, "clip": "c", "channel": "lab",
            "speaker": speaker, "started_at": started, "duration": 10.0 * len(lines),
            "segments": segs, "source": {"key": f"audio/g/{session}/c.ogg", "kind": "audio"}}


@pytest.fixture
def conns(tmp_path):
    shards = Shards(tmp_path)
    indexer.index_transcript(shards, "transcripts/g/s1/a.json", "e", _doc("s1", "Alice", NOV,
                                                                          ALICE_NOV))
    indexer.index_transcript(shards, "transcripts/g/s2/b.json", "e", _doc("s2", "Bob", DEC,
                                                                          BOB_DEC))
    shards.close()
    out = shards.readers("g")
    assert len(out) == 2  # one shard a month
    yield out
    for c in out:
        c.close()


def _or_top(conn, terms: list[str], limit: int) -> list[str]:
    """The plain OR ranking, as keyword() ran it before ranking the AND first."""
    return [r[0] for r in conn.execute(
        "SELECT s.text FROM segment_fts JOIN segment s ON s.id = segment_fts.rowid "
        "WHERE segment_fts MATCH ? ORDER BY bm25(segment_fts) LIMIT ?",
        (retrieval.fts_query(terms), limit))]


def _traced(conns) -> list[list[str]]:
    seen: list[list[str]] = [[] for _ in conns]
    for c, log in zip(conns, seen, strict=True):
        c.set_trace_callback(log.append)
    return seen


def _texts(hits) -> list[str]:
    return [s.text for s, _ in hits]


def test_segments_with_every_word_come_before_segments_with_some(conns):
    nov = conns[:1]
    assert "port port port" in _or_top(nov[0], ["grafana", "port"], 3)  # OR prefers it
    hits = retrieval.keyword(nov, ["grafana", "port"], limit=3)
    assert len(hits) == 3
    assert all({"grafana", "port"} <= set(t.split()) for t in _texts(hits))
    # an absent word neither empties the AND nor changes it
    assert _texts(retrieval.keyword(nov, ["grafana", "zebra", "port"], limit=3)) == _texts(hits)


def test_too_few_with_every_word_falls_back_to_the_or_ranking(conns):
    nov = conns[:1]
    hits = retrieval.keyword(nov, ["grafana", "port"], limit=5)
    assert _texts(hits) == _or_top(nov[0], ["grafana", "port"], 5)
    assert "port port port" in _texts(hits)


def test_the_and_counts_matches_across_the_whole_guild(conns):
    # 3 in November and 2 in December: enough for 5 without the OR
    hits = retrieval.keyword(conns, ["grafana", "port"], limit=5)
    assert {i for _, i in hits} == {0, 1}
    assert "port port port" not in _texts(hits)


def test_a_word_in_half_the_segments_does_not_gate_the_and(conns):
    nov = conns[:1]
    n = nov[0].execute("SELECT count(*) FROM segment").fetchone()[0]
    df = nov[0].execute("SELECT count(*) FROM segment_fts WHERE segment_fts MATCH 'lab'")
    assert 2 * df.fetchone()[0] >= n  # FTS5 gives "lab" its floor IDF here
    assert retrieval.weighted_terms(nov[0], ["lab", "grafana", "zebra"]) == ["grafana"]
    # AND(lab, grafana) would be exactly the three lab notes; grafana alone ranks others first
    hits = retrieval.keyword(nov, ["lab", "grafana"], limit=3)
    assert "grafana grafana" in _texts(hits)
    # when every word is that common they all stay, so there is still something to rank
    assert retrieval.weighted_terms(nov[0], ["lab"]) == ["lab"]
    assert retrieval.keyword(nov, ["lab"], limit=3)


def test_a_time_filter_skips_other_months_and_tests_times_only_where_needed(conns):
    start = parse_time(NOV).timestamp()
    seen = _traced(conns)
    november = Filters(after=start - 86400, before=start + 86400)
    hits = retrieval.keyword(conns, ["grafana", "port"], november, limit=5)
    assert hits and {i for _, i in hits} == {0}
    assert not [s for s in seen[1] if "segment_fts" in s]  # December never searched
    ranked = [s for s in seen[0] if "bm25" in s]
    assert ranked and not [s for s in ranked if "CROSS JOIN" in s]  # all of it is in the window
    seen[0].clear()
    late = Filters(after=start + 25)  # cuts November's session after its third segment
    hits = retrieval.keyword(conns, ["grafana", "port"], late, limit=10)
    assert all(s.end >= start + 25 for s, _ in hits)
    assert "port port port" in _texts(hits) and "lab note grafana port stays" not in _texts(hits)
    assert [s for s in seen[0] if "bm25" in s and "CROSS JOIN" in s]
    seen[0].clear()
    hits = retrieval.keyword(conns, ["grafana", "port"], Filters(after=start + 86400), limit=5)
    assert {i for _, i in hits} == {1}
    assert not [s for s in seen[0] if "segment_fts" in s]  # November ended before that


def test_a_speaker_filter_skips_shards_without_that_speaker(conns):
    seen = _traced(conns)
    hits = retrieval.keyword(conns, ["grafana"], Filters(speakers=("bob",)), limit=5)
    assert {s.speaker for s, _ in hits} == {"Bob"} and len(hits) == 2
    assert not [s for s in seen[0] if "segment_fts" in s]
    assert retrieval.keyword(conns, ["grafana"], Filters(speakers=("nobody",))) == []
    alice = retrieval.keyword(conns, ["grafana"], Filters(speakers=("alice",), sessions=("s1",)))
    assert {s.speaker for s, _ in alice} == {"Alice"} and len(alice) == 5


def test_search_ranks_like_keyword(conns):
    assert _texts(retrieval.search(conns, "Grafana port?", 5)) == _texts(
        retrieval.keyword(conns, ["grafana", "port"], limit=5))


def test_hamming_counts_differing_bits_for_all_rows_or_some():
    rng = np.random.default_rng(3)
    packed = rng.integers(0, 256, size=(500, 48), dtype=np.uint8)
    q = rng.integers(0, 256, size=(1, 48), dtype=np.uint8)
    naive = np.unpackbits(packed ^ q, axis=1).sum(axis=1)
    codes = np.ascontiguousarray(vectors._words(packed).T)
    qcode = vectors._words(q)[0]
    assert (vectors.hamming(codes, qcode) == naive).all()
    rows = np.array([7, 3, 499, 0])
    assert (vectors.hamming(codes, qcode, rows) == naive[rows]).all()


def test_smallest_picks_the_k_nearest_codes():
    rng = np.random.default_rng(4)
    dist = rng.binomial(384, 0.5, size=5000).astype(np.uint16)
    for k in (1, 256, 4999):
        got = vectors.smallest(dist, k)
        assert len(got) == len(set(got.tolist())) == k
        assert dist[got].max() <= np.sort(dist)[k - 1]
    assert sorted(vectors.smallest(dist[:10], 50).tolist()) == list(range(10))


def test_sign_scores_rank_rows_by_the_query_on_their_sign_bits():
    rng = np.random.default_rng(6)
    vecs = rng.normal(size=(300, 384)).astype(np.float32)
    q = rng.normal(size=384).astype(np.float32)
    codes = np.ascontiguousarray(vectors._words(embeddings.sign_code(vecs)).T)
    rows = np.array([5, 0, 299, 17])
    want = (vecs[rows] > 0).astype(np.float32) @ q
    assert np.allclose(vectors.sign_scores(codes, rows, q), want, atol=1e-4)
