"""Index shards: `<root>/<guild>/<yyyy-mm>.sqlite3`, one SQLite file per guild and month.

Older months never change, so publishing (cluster) costs the current month only, and a guild's
question opens that guild's files and no others: isolation by construction. The index function
is the only writer; readers open shards read-only.
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

MONTH = re.compile(r"^\d{4}-\d{2}$")
SUFFIX = ".sqlite3"
PRAGMAS = {"journal_mode": "wal", "foreign_keys": 1, "synchronous": "normal",
           "busy_timeout": 5000}


def month_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m")


class Shards:
    """The shard files under one directory, and the single writer's open connections."""

    def __init__(self, root: Path | str,
                 restore: Callable[[str, str, Path], bool] | None = None) -> None:
        self.root = Path(root)
        # On the cluster a fresh container has no working copy: `restore` fetches the
        # published shard before the first write, so a restarted index resumes where it was.
        self.restore = restore
        self._writers: dict[Path, SqliteDatabase] = {}
        self.lock = threading.RLock()  # the index function writes one transcript at a time

    def path(self, guild: str, month: str) -> Path:
        if not MONTH.match(month):
            raise ValueError(f"shard month {month!r} is not YYYY-MM")
        return self.root / validate_id(guild, "guild") / f"{month}{SUFFIX}"

    def guilds(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def months(self, guild: str) -> list[str]:
        d = self.root / validate_id(guild, "guild")
        return sorted(p.name[: -len(SUFFIX)] for p in d.glob(f"*{SUFFIX}")) if d.is_dir() else []

    def paths(self, guild: str) -> list[Path]:
        return [self.path(guild, m) for m in self.months(guild)]

    def writer(self, guild: str, month: str) -> SqliteDatabase:
        """The writable connection for a shard, created and migrated on first use."""
        path = self.path(guild, month)
        with self.lock:
            db = self._writers.get(path)
            if db is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                if self.restore is not None and not path.exists():
                    self.restore(guild, month, path)
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
