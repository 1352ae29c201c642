"""Index shards: SQLite files per guild and month, `<root>/<guild>/<yyyy-mm>[.<part>].sqlite3`.

A month is one file until it grows past `part_bytes`; then new rows go to a next part
(`2026-11.2.sqlite3`, `2026-11.3.sqlite3`, ...). A full part, like an older month, no longer
grows, so publishing (cluster) costs one part at most however busy the month is, and an answer
replica re-downloads only the part that changed. A guild's question opens that guild's files and
no others: isolation by construction. The index function is the only writer; readers open
shards read-only.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from peewee import SqliteDatabase

from homelabpi.index.schema import migrate
from homelabpi.keys import validate_id
from homelabpi.settings import SHARD_PART_MB

SUFFIX = ".sqlite3"
# "2026-11" is a month's first part; "2026-11.2" its second. Part 1 never carries a number, so
# a month that never filled one part has the same name it always had.
NAME = re.compile(r"^(?P<month>\d{4}-(0[1-9]|1[0-2]))(\.(?P<part>[2-9]|[1-9]\d+))?$")
DEFAULT_PART_BYTES = int(SHARD_PART_MB * 1024 * 1024)
PRAGMAS = {"journal_mode": "wal", "foreign_keys": 1, "synchronous": "normal",
           "busy_timeout": 5000}


def month_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m")


def shard_name(month: str, part: int = 1) -> str:
    name = month if part == 1 else f"{month}.{part}"
    parse_name(name)
    return name


def parse_name(name: str) -> tuple[str, int]:
    """(month, part) of a shard name; ValueError for anything that is not one."""
    m = NAME.match(name) if isinstance(name, str) else None
    if m is None:
        raise ValueError(f"shard name {name!r} is not 'yyyy-mm' or 'yyyy-mm.<part>'")
    return m["month"], int(m["part"] or 1)


def name_of_file(filename: str) -> str | None:
    """The shard name of `<name>.sqlite3`, or None for any other file."""
    if not filename.endswith(SUFFIX):
        return None
    name = filename[: -len(SUFFIX)]
    return name if NAME.match(name) else None


def sort_names(names: list[str] | set[str]) -> list[str]:
    """Oldest first: by month, then part number (so `2026-11.10` follows `2026-11.9`)."""
    return sorted(names, key=parse_name)


# Puts the published parts of (guild, month), or of every month when None, into a directory,
# skipping parts already there.
RestoreMonth = Callable[[str, str | None, Path], None]


class Shards:
    """The shard files under one directory, and the single writer's open connections."""

    def __init__(self, root: Path | str, restore: RestoreMonth | None = None,
                 part_bytes: int = DEFAULT_PART_BYTES) -> None:
        self.root = Path(root)
        # On the cluster a fresh container has no working copy: `restore` fetches the month's
        # published parts before the first write, so a restarted index resumes where it was.
        self.restore = restore
        self.part_bytes = part_bytes
        self._writers: dict[Path, SqliteDatabase] = {}
        self._restored: set[tuple[str, str]] = set()
        self.lock = threading.RLock()  # the index function writes one transcript at a time

    def path(self, guild: str, name: str) -> Path:
        parse_name(name)
        return self.root / validate_id(guild, "guild") / f"{name}{SUFFIX}"

    def guilds(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def names(self, guild: str) -> list[str]:
        """Every shard of `guild` on this disk, oldest first."""
        d = self.root / validate_id(guild, "guild")
        if not d.is_dir():
            return []
        return sort_names({n for p in d.glob(f"*{SUFFIX}") if (n := name_of_file(p.name))})

    def paths(self, guild: str) -> list[Path]:
        return [self.path(guild, n) for n in self.names(guild)]

    def parts(self, guild: str, month: str) -> list[str]:
        """The month's shards, restoring the published ones first on a fresh container."""
        parse_name(month)
        with self.lock:
            self._restore_once(guild, month)
            return [n for n in self.names(guild) if parse_name(n)[0] == month]

    def every(self, guild: str) -> list[str]:
        """All of the guild's shards, restoring every published month first (a deletion's key
        does not say its month)."""
        with self.lock:
            self._restore_once(guild, None)
            return self.names(guild)

    def _restore_once(self, guild: str, month: str | None) -> None:
        if self.restore is None or {(guild, month), (guild, None)} & self._restored:
            return
        directory = self.root / validate_id(guild, "guild")
        directory.mkdir(parents=True, exist_ok=True)
        self.restore(guild, month, directory)
        self._restored.add((guild, month))

    def open_part(self, guild: str, month: str) -> str:
        """The part new rows of `month` go to: the last one, or a new one once it is full."""
        with self.lock:
            parts = self.parts(guild, month)
            if not parts:
                return shard_name(month)
            last = parts[-1]
            if self.size(guild, last) < self.part_bytes:
                return last
            return shard_name(month, parse_name(last)[1] + 1)

    def size(self, guild: str, name: str) -> int:
        db = self.writer(guild, name)
        with self.lock:
            return content_bytes(db.connection())

    def writer(self, guild: str, name: str) -> SqliteDatabase:
        """The writable connection for a shard, created and migrated on first use."""
        path = self.path(guild, name)
        with self.lock:
            db = self._writers.get(path)
            if db is None:
                self.parts(guild, parse_name(name)[0])  # restore before creating anything
                path.parent.mkdir(parents=True, exist_ok=True)
                db = SqliteDatabase(str(path), pragmas=PRAGMAS, check_same_thread=False)
                db.connect()
                migrate(db)
                self._writers[path] = db
            return db

    def close(self) -> None:
        with self.lock:
            for db in self._writers.values():
                db.close()
            self._writers.clear()

    def readers(self, guild: str) -> list[sqlite3.Connection]:
        return [open_readonly(p) for p in self.paths(guild)]


def content_bytes(conn: sqlite3.Connection) -> int:
    """Bytes a shard's content takes, counting pages still in its write-ahead log (the file
    size alone lags until a checkpoint): what decides that a part is full."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    return int(pages) * int(conn.execute("PRAGMA page_size").fetchone()[0])


def readonly_uri(path: Path | str, immutable: bool = False) -> str:
    """SQLite URI that opens a shard read-only: answer replicas must never write one.

    `immutable` is for cached copies of published shards, which are replaced by rename and
    never changed in place, so SQLite may skip locking and the -shm file altogether.
    """
    uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
    return uri + ("&immutable=1" if immutable else "")


def open_readonly(path: Path, immutable: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(readonly_uri(path, immutable), uri=True, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn
