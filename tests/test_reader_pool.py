"""The answer side's pool of read-only shard connections: reused, and never stale."""

from __future__ import annotations

import os
import sqlite3

import pytest

from homelabpi.index.readers import ReaderPool
from homelabpi.index.shards import open_readonly


def shard(path, text):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE IF NOT EXISTS t (x TEXT)")
    con.execute("DELETE FROM t")
    con.execute("INSERT INTO t VALUES (?)", (text,))
    con.commit()
    con.close()


def read(conn):
    return conn.execute("SELECT x FROM t").fetchone()[0]


@pytest.fixture
def opened():
    log = []

    def open_shard(path):
        conn = open_readonly(path, immutable=True)
        log.append(conn)
        return conn

    return log, open_shard


def test_a_connection_is_reused_until_its_file_is_replaced(tmp_path, opened):
    log, open_shard = opened
    a, b = tmp_path / "2026-10.sqlite3", tmp_path / "2026-11.sqlite3"
    shard(a, "october")
    shard(b, "november")
    pool = ReaderPool(open_shard)
    with pool.borrow([a, b]) as conns:
        assert [read(c) for c in conns] == ["october", "november"]
        first = list(conns)
    with pool.borrow([a, b]) as conns:
        assert conns == first and len(log) == 2  # nothing opened again

    # A replica downloads a new copy and renames it over the old one.
    new = tmp_path / "new.sqlite3"
    shard(new, "november, updated")
    os.replace(new, b)
    with pool.borrow([a, b]) as conns:
        assert [read(c) for c in conns] == ["october", "november, updated"]
        assert conns[0] is first[0] and conns[1] is not first[1]
    with pytest.raises(sqlite3.ProgrammingError):
        read(first[1])  # the stale connection was closed
    pool.close()
    with pytest.raises(sqlite3.ProgrammingError):
        read(first[0])


def test_concurrent_borrowers_get_their_own_connections(tmp_path, opened):
    log, open_shard = opened
    a = tmp_path / "2026-11.sqlite3"
    shard(a, "x")
    pool = ReaderPool(open_shard, idle=1)
    with pool.borrow([a]) as one, pool.borrow([a]) as two:
        assert one[0] is not two[0]
    # Only `idle` connections per file are kept; the other was closed on return.
    assert sum(1 for c in log if _is_open(c)) == 1
    pool.close()


def test_a_file_replaced_while_lent_is_not_kept(tmp_path, opened):
    log, open_shard = opened
    a = tmp_path / "2026-11.sqlite3"
    shard(a, "old")
    pool = ReaderPool(open_shard)
    with pool.borrow([a]) as conns:
        new = tmp_path / "new.sqlite3"
        shard(new, "new")
        os.replace(new, a)
        assert read(conns[0]) == "old"  # the borrower keeps a consistent view
    assert not _is_open(conns[0])
    with pool.borrow([a]) as conns:
        assert read(conns[0]) == "new"
    pool.close()


def _is_open(conn):
    try:
        conn.execute("SELECT 1")
        return True
    except sqlite3.ProgrammingError:
        return False
