"""Read-only shard connections kept open between questions.

Opening a shard costs more than the open: SQLite parses the schema again and starts from a cold
page cache, which at 1,000 hours (dozens of files) was about a third of a question's retrieval
time. The pool lends each question a connection per shard and takes it back; a shard file that
was replaced (a replica downloaded a new copy, renamed over the old) or deleted gets a fresh
connection, and the old one is closed once returned.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

Identity = tuple[int, int, int]


def identity(path: Path) -> Identity | None:
    """(inode, mtime, size) of the file: a rename over it or a rewrite changes it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class ReaderPool:
    """Idle read-only connections per shard file, lent out one borrower at a time."""

    def __init__(self, open_shard: Callable[[Path], sqlite3.Connection], idle: int = 2) -> None:
        self._open = open_shard
        self._idle_max = idle  # idle connections kept per file (one per concurrent question)
        self._idle: dict[Path, list[tuple[Identity | None, sqlite3.Connection]]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self, paths: list[Path]) -> Iterator[list[sqlite3.Connection]]:
        """Connections to `paths`, in order, for the length of the `with` block."""
        lent: list[tuple[Path, Identity | None, sqlite3.Connection]] = []
        try:
            for path in paths:
                ident = identity(path)
                lent.append((path, ident, self._take(path, ident)))
            yield [conn for _, _, conn in lent]
        finally:
            for path, ident, conn in lent:
                self._give_back(path, ident, conn)

    def _take(self, path: Path, ident: Identity | None) -> sqlite3.Connection:
        stale = []
        found = None
        with self._lock:
            idle = self._idle.get(path, [])
            while idle and found is None:
                was, conn = idle.pop()
                if was == ident and ident is not None:
                    found = conn
                else:
                    stale.append(conn)
        for conn in stale:
            conn.close()
        return found if found is not None else self._open(path)

    def _give_back(self, path: Path, ident: Identity | None, conn: sqlite3.Connection) -> None:
        if ident is not None and identity(path) == ident:
            with self._lock:
                idle = self._idle.setdefault(path, [])
                if len(idle) < self._idle_max:
                    idle.append((ident, conn))
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for _, conn in conns:
                conn.close()
