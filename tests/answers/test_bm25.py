"""BM25 scored from FTS5's postings: the same ranking as FTS5's bm25(), or no answer at all."""

from __future__ import annotations

import pytest

from homelabpi.answering import bm25, retrieval
from homelabpi.index import indexer
from homelabpi.index.shards import Shards

LINES = ["grafana port is three thousand", "port port port", "grafana grafana",
         "the switches were swapped", "switch the grafana port to three thousand and one",
         "backup runs at night", "a long line about the lab and the rack and the ups and power",
         "grafana", "lab", "lab lab", "nothing to see"]


def _doc(session: str, started: str, lines: list[str]) -> dict:
    segs = [{"speaker": "Alice", "start": 10.0 * n, "end": 10.0 * n + 5, "text": text,
             "words": [], "confidence": 1.0} for n, text in enumerate(lines)]
    return {"version": 1, "guild": "g", "session": session, "clip": "c", "channel": "lab",
            "speaker": "Alice", "started_at": started, "duration": 10.0 * len(lines),
            "segments": segs, "source": {"key": f"audio/g/{session}/c.ogg", "kind": "audio"}}


@pytest.fixture
def shard(tmp_path):
    shards = Shards(tmp_path)
    indexer.index_transcript(shards, "transcripts/g/s1/a.json", "e",
                             _doc("s1", "2026-11-10T19:00:00Z", LINES))
    conn = shards.readers("g")[0]
    yield shards, conn
    conn.close()
    shards.close()
    bm25.forget()


def _fts5(conn, terms: list[str], limit: int) -> list[tuple[int, float]]:
    return [(r[0], -r[1]) for r in conn.execute(
        "SELECT rowid, bm25(segment_fts) AS rank FROM segment_fts WHERE segment_fts MATCH ? "
        "ORDER BY rank LIMIT ?", (retrieval.fts_query(terms), limit))]


@pytest.mark.parametrize("terms", [["grafana"], ["grafana", "port"], ["port", "port"],
                                   ["grafana", "zebra"], ["lab"], ["switches"], ["thousand",
                                   "three", "grafana", "night"]])
def test_rank_is_fts5_bm25(shard, terms):
    _, conn = shard
    want = _fts5(conn, terms, 5)
    got = bm25.rank(conn, terms, 5)
    assert want, terms  # every case matches something
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-12)


def test_rank_of_words_the_shard_never_saw_is_empty(shard):
    _, conn = shard
    assert bm25.rank(conn, ["zebra"], 5) == []


def test_terms_map_to_what_fts5_indexed():
    assert bm25.token("Configured") == "configur"
    assert bm25.token("switches") == "switch"
    assert bm25.token("it's") is None  # two tokens: FTS5 would match a phrase


def test_lengths_decode_one_and_two_byte_varints():
    stream = bytes([5, 0x81, 0x00, 0x7F, 0x82, 0x05])  # 5, 128, 127, 261
    assert bm25._varints(stream).tolist() == [5, 128, 127, 261]


def test_rows_newer_than_the_lengths_leave_the_ranking_to_fts5(shard, monkeypatch):
    shards, conn = shard
    monkeypatch.setattr(bm25, "shard_key", lambda c: ("fixed", ()))  # never notices the write
    assert bm25.rank(conn, ["grafana"], 5)
    indexer.index_transcript(shards, "transcripts/g/s1/b.json", "e",
                             _doc("s1", "2026-11-10T19:30:00Z", ["grafana on a new line"]))
    assert bm25.rank(conn, ["grafana"], 5) is None
    # keyword() falls back to FTS5 and still finds the new segment
    texts = [s.text for s, _ in retrieval.keyword([conn], ["grafana"], limit=10)]
    assert "grafana on a new line" in texts


def test_keyword_ranks_one_word_from_postings_and_an_and_with_fts5(shard):
    _, conn = shard
    want = [i for i, _ in _fts5(conn, ["grafana"], 3)]
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    assert [s.id for s, _ in retrieval.keyword([conn], ["grafana"], limit=3)] == want
    assert not [s for s in seen if "bm25(" in s]
    seen.clear()
    retrieval.keyword([conn], ["grafana", "port"], limit=2)  # two segments hold both
    assert [s for s in seen if "bm25(" in s and " AND " in s]
    assert not [s for s in seen if "bm25(" in s and " OR " in s]


def test_a_filter_is_applied_best_first_with_the_same_ranking(shard, monkeypatch):
    _, conn = shard
    odd = {i for (i,) in conn.execute("SELECT id FROM segment WHERE id % 2 = 1")}
    asked: list[int] = []

    def keep(ids: list[int]) -> set[int]:
        asked.extend(ids)
        return odd & set(ids)

    want = [(r[0], -r[1]) for r in conn.execute(
        "SELECT rowid, bm25(segment_fts) AS rank FROM segment_fts WHERE segment_fts MATCH ? "
        "AND rowid % 2 = 1 ORDER BY rank LIMIT 2", ('"grafana" OR "port"',))]
    got = bm25.rank(conn, ["grafana", "port"], 2, keep)
    assert [i for i, _ in got] == [i for i, _ in want] and len(got) == 2
    assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-12)
    # one batch of 4 x limit (all five matches here), asked about best first
    assert asked == [i for i, _ in bm25.rank(conn, ["grafana", "port"], 8)]
    # a filter that passes too few of the best is left to FTS5
    monkeypatch.setattr(bm25, "CHECK_BUDGET", 4)
    assert bm25.rank(conn, ["grafana", "port"], 1, lambda ids: set()) is None
    assert bm25.rank(conn, ["grafana", "port"], 1, lambda ids: set(ids)) == [
        bm25.rank(conn, ["grafana", "port"], 1)[0]]
    # having checked every match, none passing is an answer
    assert bm25.rank(conn, ["grafana", "port"], 2, lambda ids: set()) == []
