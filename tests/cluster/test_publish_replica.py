"""Shard publishing and read replicas against a real HTTP S3 endpoint and real SQLite files."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from homelabpi.errors import BadInput
from homelabpi.index.publish import publish, published_shards, restore, restore_month
from homelabpi.index.replica import ShardCache
from homelabpi.index.shards import readonly_uri


def make_shard(path, rows, wal=True):
    con = sqlite3.connect(path)
    if wal:
        con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE IF NOT EXISTS segments (id INTEGER PRIMARY KEY, text TEXT)")
    con.executemany("INSERT INTO segments (text) VALUES (?)", [(r,) for r in rows])
    con.commit()
    return con


def texts(path):
    con = sqlite3.connect(readonly_uri(path, immutable=True), uri=True)
    try:
        return [r[0] for r in con.execute("SELECT text FROM segments ORDER BY id")]
    finally:
        con.close()


def test_publish_is_a_consistent_snapshot_while_the_writer_is_open(minio_store, tmp_path):
    work = tmp_path / "work" / "g1"
    work.mkdir(parents=True)
    writer = make_shard(work / "2026-11.sqlite3", ["we decided to use vlan 20"])
    # Uncommitted work in the writer must not leak into the snapshot.
    writer.execute("INSERT INTO segments (text) VALUES ('not yet committed')")
    info = publish(minio_store, work / "2026-11.sqlite3", "g1", "2026-11")
    writer.rollback()
    assert info.key == "index/g1/2026-11.sqlite3"
    got = tmp_path / "got.sqlite3"
    minio_store.get_file(info.key, got)
    assert texts(got) == ["we decided to use vlan 20"]
    # Self-contained: rollback journal mode, so a read-only reader needs no -wal/-shm.
    con = sqlite3.connect(got)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()
    assert sorted(p.name for p in work.iterdir())[0] == "2026-11.sqlite3"
    assert not [p for p in work.iterdir() if "snapshot" in p.name]
    writer.close()


def test_republishing_unchanged_content_skips_the_upload(minio_store, s3, tmp_path):
    path = tmp_path / "2026-11.sqlite3"
    make_shard(path, ["a"]).close()
    first = publish(minio_store, path, "g1", "2026-11")
    s3.clear()
    again = publish(minio_store, path, "g1", "2026-11")
    assert again.etag == first.etag
    assert [r.method for r in s3.requests] == ["HEAD"]
    make_shard(path, ["b"]).close()
    changed = publish(minio_store, path, "g1", "2026-11")
    assert changed.etag != first.etag


def test_restore_resumes_a_restarted_writer(minio_store, tmp_path):
    src = tmp_path / "old" / "2026-10.sqlite3"
    src.parent.mkdir()
    make_shard(src, ["first", "second"]).close()
    publish(minio_store, src, "g1", "2026-10")
    dest = tmp_path / "new" / "g1" / "2026-10.sqlite3"
    dest.parent.mkdir(parents=True)
    # A stale WAL beside the destination must not be replayed into the restored file.
    stale = make_shard(dest, ["stale"], wal=True)
    stale.execute("PRAGMA wal_autocheckpoint=0")
    stale.execute("INSERT INTO segments (text) VALUES ('stale wal row')")
    stale.commit()
    wal = tmp_path / "new" / "g1" / "2026-10.sqlite3-wal"
    assert wal.stat().st_size > 0
    assert restore(minio_store, "g1", "2026-10", dest)
    assert not wal.exists()
    stale.close()
    assert texts(dest) == ["first", "second"]
    # The restored copy is writable again: the index keeps appending to it.
    make_shard(dest, ["third"]).close()
    assert texts(dest) == ["first", "second", "third"]
    assert not restore(minio_store, "g1", "2026-09", tmp_path / "none.sqlite3")
    assert not (tmp_path / "none.sqlite3").exists()


def test_restore_refuses_a_non_sqlite_object(minio_store, tmp_path):
    minio_store.put("index/g1/2026-11.sqlite3", b"not a database" * 100)
    dest = tmp_path / "x.sqlite3"
    with pytest.raises(BadInput, match="not a SQLite"):
        restore(minio_store, "g1", "2026-11", dest)
    assert not dest.exists()


def test_bad_guild_or_shard_name_rejected(minio_store, tmp_path):
    path = tmp_path / "s.sqlite3"
    make_shard(path, ["a"]).close()
    for guild, month in [("../g", "2026-11"), ("g", "2026-13"), ("g", "26-11"), ("g/x", "2026-11"),
                         ("g", "2026-11.1"), ("g", "2026-11.x"), ("g", "2026-11/../x")]:
        with pytest.raises(BadInput):
            publish(minio_store, path, guild, month)


def _publish_months(store, tmp_path, guild, months):
    for m in months:
        p = tmp_path / "work" / guild / f"{m}.sqlite3"
        p.parent.mkdir(parents=True, exist_ok=True)
        make_shard(p, [f"{guild} {m}"]).close()
        publish(store, p, guild, m)


def test_replica_downloads_only_changed_shards(minio_store, s3, tmp_path):
    _publish_months(minio_store, tmp_path, "g1", ["2026-09", "2026-10", "2026-11"])
    cache = ShardCache(minio_store, tmp_path / "cache")
    s3.clear()
    paths = cache.paths_for("g1")
    assert [p.name for p in paths] == ["2026-09.sqlite3", "2026-10.sqlite3", "2026-11.sqlite3"]
    assert sorted(s3.object_gets(minio_store.bucket)) == [
        "index/g1/2026-09.sqlite3", "index/g1/2026-10.sqlite3", "index/g1/2026-11.sqlite3"]
    assert [texts(p) for p in paths] == [["g1 2026-09"], ["g1 2026-10"], ["g1 2026-11"]]

    s3.clear()
    assert cache.paths_for("g1") == paths
    assert s3.object_gets(minio_store.bucket) == []  # nothing changed: list only

    # The index appends to the current month and republishes it.
    current = tmp_path / "work" / "g1" / "2026-11.sqlite3"
    make_shard(current, ["g1 new clip"]).close()
    publish(minio_store, current, "g1", "2026-11")
    s3.clear()
    old_reader = sqlite3.connect(readonly_uri(paths[2], immutable=True), uri=True)
    paths = cache.paths_for("g1")
    assert s3.object_gets(minio_store.bucket) == ["index/g1/2026-11.sqlite3"]
    assert texts(paths[2]) == ["g1 2026-11", "g1 new clip"]
    # A reader that had the old file open keeps a consistent (old) view: replace is a rename.
    assert [r[0] for r in old_reader.execute("SELECT text FROM segments")] == ["g1 2026-11"]
    old_reader.close()

    # A fresh cache object over the same directory (new process, warm disk) downloads nothing.
    s3.clear()
    ShardCache(minio_store, tmp_path / "cache").paths_for("g1")
    assert s3.object_gets(minio_store.bucket) == []


def test_a_guilds_question_never_touches_another_guilds_shards(minio_store, s3, tmp_path):
    _publish_months(minio_store, tmp_path, "g1", ["2026-11"])
    _publish_months(minio_store, tmp_path, "g10", ["2026-11"])  # prefix-sharing guild id
    _publish_months(minio_store, tmp_path, "other", ["2026-10", "2026-11"])
    cache = ShardCache(minio_store, tmp_path / "cache")
    s3.clear()
    paths = cache.paths_for("g1")
    assert [texts(p) for p in paths] == [["g1 2026-11"]]
    assert s3.object_gets(minio_store.bucket) == ["index/g1/2026-11.sqlite3"]
    assert s3.list_prefixes(minio_store.bucket) == ["index/g1/"]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["g1"]
    with pytest.raises(BadInput):
        cache.paths_for("../other")
    with pytest.raises(BadInput):
        cache.paths_for("g1/../other")


def test_replica_drops_unpublished_shards_and_ignores_strays(minio_store, tmp_path):
    _publish_months(minio_store, tmp_path, "g1", ["2026-10", "2026-11"])
    minio_store.put("index/g1/notes.txt", b"stray")
    minio_store.put("index/g1/2026-11.sqlite3.bak", b"stray")
    cache = ShardCache(minio_store, tmp_path / "cache")
    assert [p.name for p in cache.paths_for("g1")] == ["2026-10.sqlite3", "2026-11.sqlite3"]
    minio_store.delete("index/g1/2026-10.sqlite3")
    assert [p.name for p in cache.paths_for("g1")] == ["2026-11.sqlite3"]
    assert not (tmp_path / "cache" / "g1" / "2026-10.sqlite3").exists()
    assert published_shards(minio_store, "g1") == ["2026-11"]


def test_concurrent_questions_download_once(minio_store, s3, tmp_path):
    _publish_months(minio_store, tmp_path, "g1", ["2026-11"])
    cache = ShardCache(minio_store, tmp_path / "cache")
    s3.clear()
    results, errors = [], []

    def ask():
        try:
            results.append(cache.paths_for("g1"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert s3.object_gets(minio_store.bucket) == ["index/g1/2026-11.sqlite3"]
    assert all(r == results[0] for r in results)


def test_works_with_the_local_store_too(tmp_path):
    from homelabpi.store.local import LocalStore

    store = LocalStore(tmp_path / "store")
    _publish_months(store, tmp_path, "g1", ["2026-11"])
    assert [texts(p) for p in ShardCache(store, tmp_path / "cache").paths_for("g1")] == [
        ["g1 2026-11"]]


def test_replica_fetches_only_the_part_that_changed(minio_store, s3, tmp_path):
    names = ["2026-10", "2026-11", "2026-11.2", "2026-11.10", "2026-11.9"]
    _publish_months(minio_store, tmp_path, "g1", names)
    assert published_shards(minio_store, "g1") == [
        "2026-10", "2026-11", "2026-11.2", "2026-11.9", "2026-11.10"]
    cache = ShardCache(minio_store, tmp_path / "cache")
    paths = cache.paths_for("g1")
    assert [p.name for p in paths] == ["2026-10.sqlite3", "2026-11.sqlite3", "2026-11.2.sqlite3",
                                       "2026-11.9.sqlite3", "2026-11.10.sqlite3"]
    # The index writes into the last part only; a question then downloads that part alone.
    current = tmp_path / "work" / "g1" / "2026-11.10.sqlite3"
    make_shard(current, ["g1 new clip"]).close()
    publish(minio_store, current, "g1", "2026-11.10")
    s3.clear()
    paths = cache.paths_for("g1")
    assert s3.object_gets(minio_store.bucket) == ["index/g1/2026-11.10.sqlite3"]
    assert texts(paths[-1]) == ["g1 2026-11.10", "g1 new clip"]


def test_restore_month_brings_back_the_missing_parts_of_that_month(minio_store, s3, tmp_path):
    _publish_months(minio_store, tmp_path, "g1", ["2026-10", "2026-11", "2026-11.2"])
    dest = tmp_path / "fresh" / "g1"
    dest.mkdir(parents=True)
    make_shard(dest / "2026-11.2.sqlite3", ["written here, not yet published"]).close()
    s3.clear()
    assert restore_month(minio_store, "g1", "2026-11", dest) == ["2026-11"]
    assert sorted(p.name for p in dest.iterdir()) == ["2026-11.2.sqlite3", "2026-11.sqlite3"]
    assert s3.object_gets(minio_store.bucket) == ["index/g1/2026-11.sqlite3"]
    # The writer's own copy wins over the published one.
    assert texts(dest / "2026-11.2.sqlite3") == ["written here, not yet published"]
    assert restore_month(minio_store, "g1", None, dest) == ["2026-10"]
