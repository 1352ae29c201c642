"""Publishing index shards to the store, and getting them back after a restart.

OpenFaaS functions have no volumes, so the index function (the single writer) keeps a working copy
of each shard on its container disk and publishes a snapshot to
`index/<guild>/<yyyy-mm>[.<part>].sqlite3` after it writes (one part: see `shards`). The snapshot
is taken with SQLite's online backup API: a consistent copy even while the writer's connection is
open (WAL or not), never a torn file copy. A restarted index function calls `restore_month` to
pick up where the published shards left off; the transcripts in the store remain the source of
truth (`homelabpi reindex` rebuilds everything from them).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from homelabpi.durable import file_digest
from homelabpi.errors import BadInput, NotFound
from homelabpi.index.shards import SUFFIX, name_of_file, parse_name, sort_names
from homelabpi.keys import shard_key, validate_id
from homelabpi.store import ObjectInfo, ObjectStore

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.sqlite3"
HASH_META = "sha256"  # user metadata: lets a publish of unchanged content skip the upload


def check_name(name: str) -> str:
    try:
        parse_name(name)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    return name


def snapshot(shard_path: Path | str, dest: Path | str) -> None:
    """A consistent, self-contained copy of `shard_path` at `dest` (rollback journal, no -wal).

    Readers open published shards read-only, often on a filesystem they cannot write a `-shm`
    to, so the copy is switched out of WAL mode before it leaves the writer.
    """
    src = sqlite3.connect(f"file:{Path(shard_path).resolve()}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(str(dest))
        try:
            src.backup(dst)  # all pages in one step: one consistent read transaction
            dst.execute("PRAGMA journal_mode=DELETE")
            dst.commit()
        finally:
            dst.close()
    finally:
        src.close()



def publish(store: ObjectStore, shard_path: Path | str, guild: str, name: str) -> ObjectInfo:
    """Snapshot the working shard and put it at `index/<guild>/<name>.sqlite3`.

    Unchanged content (same SHA-256 as the published object) is not uploaded again, so a
    redelivered event does not make every answer replica re-download the shard.
    """
    shard_path = Path(shard_path)
    key = shard_key(validate_id(guild, "guild"), check_name(name))
    if not shard_path.is_file():
        raise NotFound(f"no working shard at {shard_path} to publish as {key}")
    started = time.perf_counter()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{guild}-{name}.", suffix=".snapshot",
                                    dir=shard_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        snapshot(shard_path, tmp)
        digest = file_digest(tmp, "sha256")
        try:
            current = store.stat(key)
        except NotFound:
            current = None
        if current is not None and current.metadata.get(HASH_META) == digest:
            log.debug("shard %s unchanged (sha256 %s); not uploaded", key, digest[:12])
            return current
        meta = {"guild": guild, "month": parse_name(name)[0], "shard": name, HASH_META: digest,
                "published": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        with open(tmp, "rb") as f:
            info = store.put(key, f, content_type=CONTENT_TYPE, metadata=meta)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("published %s (%d bytes, etag %s) in %.2fs", key, info.size, info.etag,
             time.perf_counter() - started)
    return info


def restore(store: ObjectStore, guild: str, name: str, dest: Path | str) -> bool:
    """Put the published shard at `dest` (atomically); False when none was ever published.

    Any `-wal`/`-shm` beside `dest` belongs to the file being replaced and would corrupt the
    restored one, so they go first.
    """
    dest = Path(dest)
    key = shard_key(validate_id(guild, "guild"), check_name(name))
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".restore", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            info = store.get_file(key, tmp)
        except NotFound:
            return False
        con = sqlite3.connect(f"file:{tmp}?mode=ro", uri=True)
        try:
            con.execute("PRAGMA schema_version").fetchone()  # raises if not a SQLite file
        except sqlite3.DatabaseError as exc:
            raise BadInput(f"published shard {key} (etag {info.etag}) is not a SQLite "
                           f"database: {exc}") from exc
        finally:
            con.close()
        for suffix in ("-wal", "-shm", "-journal"):
            Path(str(dest) + suffix).unlink(missing_ok=True)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("restored %s from %s (etag %s)", dest, key, info.etag)
    return True


def restore_month(store: ObjectStore, guild: str, month: str | None,
                  directory: Path | str) -> list[str]:
    """Restore the month's published parts (every month's when None) that `directory` lacks.

    Parts already on disk are the writer's own, possibly newer than the published copies, so
    they are kept.
    """
    directory = Path(directory)
    restored = []
    for name in published_shards(store, guild):
        if month is not None and parse_name(name)[0] != month:
            continue
        path = directory / f"{name}{SUFFIX}"
        if not path.exists() and restore(store, guild, name, path):
            restored.append(name)
    return restored


def published(store: ObjectStore, guild: str) -> dict[str, str]:
    """The shards published for `guild`, name → eTag, listing only that guild's prefix.

    Anything else under the prefix (a stray object, a `.bak`) is not a shard and never opened.
    """
    prefix = f"index/{validate_id(guild, 'guild')}/"
    out: dict[str, str] = {}
    for obj in store.list(prefix):
        rest = obj.key[len(prefix):]
        name = None if "/" in rest else name_of_file(rest)
        if name is not None:
            out[name] = obj.etag
    return out


def published_shards(store: ObjectStore, guild: str) -> list[str]:
    """Names of the shards published for `guild`, oldest first."""
    return sort_names(published(store, guild))
