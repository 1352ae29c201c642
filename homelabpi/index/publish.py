"""Publishing index shards to the store, and getting them back after a restart.

OpenFaaS functions have no volumes, so the index function (the single writer) keeps a working copy
of each shard on its container disk and publishes a snapshot to `index/<guild>/<yyyy-mm>.sqlite3`
after it writes. The snapshot is taken with SQLite's online backup API: a consistent copy even
while the writer's connection is open (WAL or not), never a torn file copy. A restarted index
function calls `restore` to pick up where the published shard left off; the transcripts in the
store remain the source of truth (`homelabpi reindex` rebuilds everything from them).
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from homelabpi.durable import file_digest
from homelabpi.errors import BadInput, NotFound
from homelabpi.keys import shard_key, validate_id
from homelabpi.store import ObjectInfo, ObjectStore

log = logging.getLogger(__name__)

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
CONTENT_TYPE = "application/vnd.sqlite3"
HASH_META = "sha256"  # user metadata: lets a publish of unchanged content skip the upload


def check_month(month: str) -> str:
    if not isinstance(month, str) or not MONTH.match(month):
        raise BadInput(f"shard month {month!r} is not 'yyyy-mm'")
    return month


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



def publish(store: ObjectStore, shard_path: Path | str, guild: str, month: str) -> ObjectInfo:
    """Snapshot the working shard and put it at `index/<guild>/<month>.sqlite3`.

    Unchanged content (same SHA-256 as the published object) is not uploaded again, so a
    redelivered event does not make every answer replica re-download the shard.
    """
    shard_path = Path(shard_path)
    key = shard_key(validate_id(guild, "guild"), check_month(month))
    if not shard_path.is_file():
        raise NotFound(f"no working shard at {shard_path} to publish as {key}")
    started = time.perf_counter()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{guild}-{month}.", suffix=".snapshot",
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
        meta = {"guild": guild, "month": month, HASH_META: digest,
                "published": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        with open(tmp, "rb") as f:
            info = store.put(key, f, content_type=CONTENT_TYPE, metadata=meta)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("published %s (%d bytes, etag %s) in %.2fs", key, info.size, info.etag,
             time.perf_counter() - started)
    return info


def restore(store: ObjectStore, guild: str, month: str, dest: Path | str) -> bool:
    """Put the published shard at `dest` (atomically); False when none was ever published.

    Any `-wal`/`-shm` beside `dest` belongs to the file being replaced and would corrupt the
    restored one, so they go first.
    """
    dest = Path(dest)
    key = shard_key(validate_id(guild, "guild"), check_month(month))
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


def published_months(store: ObjectStore, guild: str) -> list[str]:
    """Months with a published shard for `guild`, oldest first (only that guild's prefix)."""
    prefix = f"index/{validate_id(guild, 'guild')}/"
    months = []
    for obj in store.list(prefix):
        name = obj.key[len(prefix):]
        if name.endswith(".sqlite3") and MONTH.match(name[:-len(".sqlite3")]):
            months.append(name[:-len(".sqlite3")])
    return sorted(months)
