"""Schema, shards and the indexer: idempotent by key + eTag, files per guild and month (parts)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from homelabpi.asr import Word
from homelabpi.durable import file_digest
from homelabpi.index import indexer
from homelabpi.index.reads import sessions
from homelabpi.index.schema import SCHEMA_VERSION
from homelabpi.index.shards import Shards, open_readonly, parse_name, shard_name, sort_names
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
    assert shards.names("g1") == ["2026-11", "2026-12"]
    assert shards.names("g2") == ["2026-11"]
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


def clip_doc(n, text="the backup nas lives in the garage rack"):
    return transcript(clip=f"c{n}", when=f"2026-11-03T10:{n // 60:02d}:{n % 60:02d}Z",
                      text=f"{text} clip{n}")


def fill_parts(shards, clips):
    """Index `clips` transcripts; returns the shard each went to."""
    return [indexer.index_transcript(shards, f"transcripts/g1/s1/c{n}.json", "e",
                                     clip_doc(n)).shard for n in range(clips)]


def test_a_full_part_starts_the_next_one_and_never_grows(tmp_path):
    shards = Shards(tmp_path / "index", part_bytes=158_000)
    went = fill_parts(shards, 40)
    names = shards.names("g1")
    assert len(names) >= 3, names
    assert names == sort_names(names) and names[0] == "2026-11" and names[1] == "2026-11.2"
    assert went == sorted(went, key=parse_name)  # rows go to one part until it is full
    for name in names[:-1]:
        assert shards.size("g1", name) >= shards.part_bytes
    # Every clip is in exactly one part, and queries see all of them.
    assert sorted(r[0] for r in rows(shards, "g1", "SELECT key FROM clip")) == sorted(
        f"transcripts/g1/s1/c{n}.json" for n in range(40))
    assert len(rows(shards, "g1", "SELECT rowid FROM segment_fts WHERE segment_fts MATCH "
                    "'garage'")) == 40
    # Another clip goes to the last part (or the next, if that just filled); full parts are
    # not written.
    last_full = shards.size("g1", names[-1]) >= shards.part_bytes
    shards.close()  # checkpoints: the files hold everything
    full = {n: file_digest(shards.path("g1", n), "sha256") for n in names[:-1]}
    went = indexer.index_transcript(shards, "transcripts/g1/s1/c99.json", "e", clip_doc(99)).shard
    assert went == (shard_name("2026-11", len(names) + 1) if last_full else names[-1])
    shards.close()
    assert {n: file_digest(shards.path("g1", n), "sha256") for n in names[:-1]} == full
    # The session spans parts: each part has its row, and reads merge them.
    assert len(rows(shards, "g1", "SELECT id FROM session")) == len(shards.names("g1"))
    conns = shards.readers("g1")
    merged = sessions(conns)
    assert [(s["session"], s["clips"]) for s in merged] == [("s1", 41)]
    for conn in conns:
        conn.close()


def test_duplicates_and_new_versions_find_their_clip_in_a_full_part(tmp_path):
    shards = Shards(tmp_path / "index", part_bytes=158_000)
    fill_parts(shards, 40)
    first = shards.names("g1")[0]
    # Redelivery of an event for a clip in a full part: nothing changes anywhere.
    again = indexer.index_transcript(shards, "transcripts/g1/s1/c0.json", "e", clip_doc(0))
    assert (again.outcome, again.shard) == ("unchanged", first)
    # A new version replaces the rows where they are, not in the open part.
    new = clip_doc(0, text="the nas moved to the attic")
    out = indexer.index_transcript(shards, "transcripts/g1/s1/c0.json", "e2", new)
    assert (out.outcome, out.shard) == ("replaced", first)
    assert rows(shards, "g1", "SELECT count(*) FROM clip WHERE key = 'transcripts/g1/s1/c0.json'"
                ) == [(1,)] + [(0,)] * (len(shards.names("g1")) - 1)
    assert rows(shards, "g1", "SELECT count(*) FROM segment_fts WHERE segment_fts MATCH 'attic'"
                )[0] == (1,)
    # Removal finds it there too.
    gone = indexer.remove_transcript(shards, "transcripts/g1/s1/c0.json", "g1")
    assert (gone.outcome, gone.shard) == ("removed", first)
    assert sum(r[0] for r in rows(shards, "g1", "SELECT count(*) FROM segment_fts WHERE "
                                  "segment_fts MATCH 'attic'")) == 0
    shards.close()


def test_shard_names():
    assert shard_name("2026-11") == "2026-11"
    assert shard_name("2026-11", 2) == "2026-11.2"
    assert parse_name("2026-11.12") == ("2026-11", 12)
    assert sort_names(["2026-11.10", "2026-12", "2026-11.9", "2026-11"]) == [
        "2026-11", "2026-11.9", "2026-11.10", "2026-12"]
    for bad in ("2026-11.1", "2026-11.0", "2026-11.02", "2026-13", "2026-11.x", "../2026-11",
                "2026-11.2.sqlite3", ""):
        with pytest.raises(ValueError):
            parse_name(bad)


def test_part_size_setting_is_checked():
    from homelabpi.settings import Settings

    assert Settings.from_env({"HOMELABPI_SHARD_PART_MB": "8"}).shard_part_bytes == 8 * 2**20
    with pytest.raises(ValueError, match="HOMELABPI_SHARD_PART_MB"):
        _ = Settings.from_env({"HOMELABPI_SHARD_PART_MB": "0"}).shard_part_bytes
