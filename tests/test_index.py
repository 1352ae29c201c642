"""Schema, shards and the indexer: idempotent by key + eTag, one file per guild and month."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from homelabpi.asr import Word
from homelabpi.index import indexer
from homelabpi.index.schema import SCHEMA_VERSION
from homelabpi.index.shards import Shards, open_readonly
from homelabpi.transcripts import ClipInfo, document, segments_from_words


def transcript(guild="g1", session="s1", clip="c1", speaker="Alice", when="2026-11-03T10:00:00Z",
               text="the backup nas lives in the garage rack"):
    info = ClipInfo(guild=guild, session=session, clip=clip, channel="lab", speaker=speaker,
                    started_at=datetime.fromisoformat(when.replace("Z", "+00:00")))
    words = [Word(w, i * 0.4, i * 0.4 + 0.3, 0.9) for i, w in enumerate(text.split())]
    return document(info, source_key=f"audio/{guild}/{session}/{clip}.ogg", source_etag="e",
                    kind="audio", engine="test", duration=words[-1].end,
                    segments=segments_from_words(words, speaker))


@pytest.fixture
def shards(tmp_path):
    s = Shards(tmp_path / "index")
    yield s
    s.close()


def rows(shards, guild, sql):
    out = []
    for path in shards.paths(guild):
        conn = open_readonly(path)
        out += [tuple(r) for r in conn.execute(sql)]
        conn.close()
    return out


def test_same_key_and_etag_changes_nothing(shards):
    doc = transcript()
    first = indexer.index_transcript(shards, "transcripts/g1/s1/c1.json", "e1", doc)
    again = indexer.index_transcript(shards, "transcripts/g1/s1/c1.json", "e1", doc)
    assert (first.outcome, again.outcome) == ("indexed", "unchanged")
    assert rows(shards, "g1", "SELECT count(*) FROM segment") == [(1,)]
    assert rows(shards, "g1", "SELECT count(*) FROM segment_fts WHERE segment_fts MATCH 'garage'"
                ) == [(1,)]


def test_new_etag_replaces_rows_and_fts(shards):
    indexer.index_transcript(shards, "transcripts/g1/s1/c1.json", "e1", transcript())
    out = indexer.index_transcript(shards, "transcripts/g1/s1/c1.json", "e2",
                                   transcript(text="the nas moved to the attic"))
    assert out.outcome == "replaced"
    assert rows(shards, "g1", "SELECT text FROM segment") == [("the nas moved to the attic",)]
    assert rows(shards, "g1", "SELECT count(*) FROM segment_fts WHERE segment_fts MATCH 'garage'"
                ) == [(0,)]
    assert rows(shards, "g1", "SELECT count(*) FROM segment_fts WHERE segment_fts MATCH 'attic'"
                ) == [(1,)]


def test_one_shard_per_guild_and_month(shards):
    indexer.index_transcript(shards, "transcripts/g1/s1/a.json", "e", transcript(clip="a"))
    indexer.index_transcript(shards, "transcripts/g1/s2/b.json", "e",
                             transcript(session="s2", clip="b", when="2026-12-01T00:00:01Z"))
    indexer.index_transcript(shards, "transcripts/g2/s3/c.json", "e",
                             transcript(guild="g2", session="s3", clip="c"))
    assert shards.guilds() == ["g1", "g2"]
    assert shards.months("g1") == ["2026-11", "2026-12"]
    assert shards.months("g2") == ["2026-11"]
    for path in shards.paths("g1"):
        conn = open_readonly(path)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()


def test_times_are_absolute_utc(shards):
    indexer.index_transcript(shards, "transcripts/g1/s1/c1.json", "e",
                             transcript(when="2026-11-03T10:00:00.500Z"))
    (start, end), = rows(shards, "g1", "SELECT start, end FROM segment")
    assert datetime.fromtimestamp(start, UTC) == datetime(2026, 11, 3, 10, 0, 0, 500000,
                                                                   tzinfo=UTC)
    assert end > start


def test_remove_transcript_drops_rows_and_empty_session(shards):
    indexer.index_transcript(shards, "transcripts/g1/s1/c1.json", "e", transcript())
    assert indexer.remove_transcript(shards, "transcripts/g1/s1/c1.json", "g1").outcome == "removed"
    assert rows(shards, "g1", "SELECT count(*) FROM segment") == [(0,)]
    assert rows(shards, "g1", "SELECT count(*) FROM session") == [(0,)]
    assert indexer.remove_transcript(shards, "transcripts/g1/s1/c1.json", "g1").outcome == "absent"


def test_subtitle_cues_keep_their_own_speakers(shards):
    doc = transcript()
    doc["segments"][0]["speaker"] = "Carol"
    indexer.index_transcript(shards, "transcripts/g1/s1/c1.json", "e", doc)
    assert rows(shards, "g1", "SELECT sp.name FROM segment s JOIN speaker sp ON sp.id = "
                "s.speaker_id") == [("Carol",)]


def test_query_log_is_idempotent(shards):
    doc = {"id": "q1", "guild": "g1", "question": "where is the nas?", "answer": "garage",
           "confidence": 0.8, "citations": [], "mode": "passage", "asker": "bob",
           "asked_at": "2026-11-03T11:00:00Z", "latency_ms": 12}
    assert indexer.index_query(shards, "queries/g1/2026-11/q1.json", "e", doc).outcome == "indexed"
    assert indexer.index_query(shards, "queries/g1/2026-11/q1.json", "e", doc).outcome == (
        "unchanged")
    assert rows(shards, "g1", "SELECT question, asker, latency_ms FROM query") == [
        ("where is the nas?", "bob", 12)]


def test_readers_cannot_write(shards):
    indexer.index_transcript(shards, "transcripts/g1/s1/c1.json", "e", transcript())
    conn = shards.readers("g1")[0]
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("DELETE FROM segment")


def test_newer_schema_is_refused(shards, tmp_path):
    from peewee import SqliteDatabase

    from homelabpi.index.schema import migrate

    path = tmp_path / "future.sqlite3"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="upgrade HomeLabPi"):
        migrate(SqliteDatabase(str(path)))
