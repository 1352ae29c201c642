"""Shard publishing and answer cold start at 10 and 100 hours of one guild's speech.

    .venv/bin/python bench/shards.py [--hours 10 100] [--store moto|local] [--keep DIR]

Builds a shard with the real schema (`homelabpi.index.schema.migrate`), fills it with synthetic
segments straight through sqlite3 (about 8 s of speech per segment, 2.5 words a second, word
timings as JSON, FTS5 kept by the schema's triggers, a float16 MiniLM embedding per segment), all
in one month: the worst case, because only the current month's shard is republished. Then measures:

- publish after one new clip: one more clip's segments inserted, then `publish` (backup API
  snapshot, SHA-256, upload). Target: under 1 s at 100 h.
- answer cold start: an empty `ShardCache` lists the guild's prefix, downloads the shard, opens
  it read-only and runs one FTS query.

`--store moto` (default) uploads over HTTP to a moto S3 server on loopback (a stand-in for MinIO:
it measures our code and the HTTP path, not a Pi's disk or network); `--store local` uses the
local store.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homelabpi.index.publish import publish  # noqa: E402
from homelabpi.index.replica import ShardCache  # noqa: E402
from homelabpi.index.shards import Shards, open_readonly  # noqa: E402

WORDS = ("the vlan router switch backup decided proxmox cluster kubernetes storage pi power "
         "network dns firewall update tuesday friday config ansible grafana alert disk raid "
         "ceph nas camera sensor zigbee mqtt home assistant docker image tag release").split()
SEG_SECONDS = 8.0
WORDS_PER_SECOND = 2.5
GUILD, MONTH = "g-bench", "2026-11"
T0 = 1_793_491_200.0  # 2026-11-01T00:00:00Z


def _seed(con: sqlite3.Connection) -> tuple[int, int, int]:
    con.execute("INSERT OR IGNORE INTO guild (id) VALUES (?)", (GUILD,))
    con.execute("INSERT INTO channel (guild_id, name, discord_id) VALUES (?, 'general', '1')",
                (GUILD,))
    channel = con.execute("SELECT max(id) FROM channel").fetchone()[0]
    con.execute("INSERT INTO speaker (guild_id, name, discord_id) VALUES (?, 'Ana', '2')", (GUILD,))
    speaker = con.execute("SELECT max(id) FROM speaker").fetchone()[0]
    con.execute("INSERT INTO session (id, guild_id, channel_id, started_at, ended_at) "
                "VALUES ('s-bench', ?, ?, ?, ?)", (GUILD, channel, T0, T0))
    return channel, speaker, 0


def add_clip(con, rng, channel, speaker, clip_no, clip_seconds=60.0):
    start = T0 + clip_no * clip_seconds
    con.execute(
        "INSERT INTO clip (key, etag, audio_key, session_id, speaker_id, channel_id, started_at, "
        "duration, status, engine, kind, indexed_at) VALUES (?, ?, '', 's-bench', ?, ?, ?, ?, "
        "'ok', 'bench', 'audio', ?)",
        (f"transcripts/{GUILD}/s-bench/c-{clip_no:07d}.json", f"{clip_no:032x}", speaker,
         channel, start, clip_seconds, time.time()))
    clip = con.execute("SELECT last_insert_rowid()").fetchone()[0]
    rows = []
    t = start
    while t < start + clip_seconds:
        n = int(SEG_SECONDS * WORDS_PER_SECOND)
        words = [rng.choice(WORDS) for _ in range(n)]
        timed = [{"w": w, "s": round(t + i / WORDS_PER_SECOND, 2),
                  "e": round(t + (i + 1) / WORDS_PER_SECOND, 2), "c": 0.9}
                 for i, w in enumerate(words)]
        rows.append((clip, speaker, channel, t, t + SEG_SECONDS, " ".join(words),
                     json.dumps(timed), 0.9))
        t += SEG_SECONDS
    con.executemany("INSERT INTO segment (clip_id, session_id, speaker_id, channel_id, start, "
                    "\"end\", text, words, confidence) VALUES (?, 's-bench', ?, ?, ?, ?, ?, ?, ?)",
                    rows)
    # The embedding the index function stores per segment (schema v2): 384 float16 values and
    # their 48 bytes of sign bits. Random bytes: the size is what publishing pays for.
    last = con.execute("SELECT last_insert_rowid()").fetchone()[0]
    con.executemany("INSERT INTO embedding (segment_id, model, vector, code) VALUES (?, ?, ?, ?)",
                    [(sid, "all-MiniLM-L6-v2", rng.randbytes(768), rng.randbytes(48))
                     for sid in range(last - len(rows) + 1, last + 1)])


def build(path_root: Path, hours: float, rng: random.Random) -> tuple[Path, int]:
    shards = Shards(path_root)
    db = shards.writer(GUILD, MONTH)  # creates + migrates with the real schema
    path = shards.path(GUILD, MONTH)
    shards.close()
    del db
    con = sqlite3.connect(path)
    channel, speaker, _ = _seed(con)
    clips = int(hours * 60)
    for i in range(clips):
        add_clip(con, rng, channel, speaker, i)
        if i % 500 == 499:
            con.commit()
    con.commit()
    con.close()
    return path, clips


def open_store(kind: str, workdir: Path):
    if kind == "local":
        from homelabpi.store.local import LocalStore

        return LocalStore(workdir / "store"), None
    from moto.server import ThreadedMotoServer

    from homelabpi.store.minio import MinioStore

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    store = MinioStore(f"http://{host}:{port}", "bench", "bench-secret", bucket="homelabpi-bench")
    store.ensure_bucket()
    return store, server


def run(hours: float, store_kind: str, workdir: Path) -> dict:
    rng = random.Random(42)
    t = time.perf_counter()
    path, clips = build(workdir / f"work-{hours:g}h", hours, rng)
    build_s = time.perf_counter() - t
    store, server = open_store(store_kind, workdir / f"s-{hours:g}h")
    try:
        publish(store, path, GUILD, MONTH)  # the month's first publish
        con = sqlite3.connect(path)
        channel = con.execute("SELECT min(id) FROM channel").fetchone()[0]
        speaker = con.execute("SELECT min(id) FROM speaker").fetchone()[0]
        add_clip(con, rng, channel, speaker, clips)
        con.commit()
        con.close()
        t = time.perf_counter()
        info = publish(store, path, GUILD, MONTH)
        publish_s = time.perf_counter() - t

        t = time.perf_counter()
        cache = ShardCache(store, workdir / f"cache-{hours:g}h")
        paths = cache.paths_for(GUILD)
        fetched_s = time.perf_counter() - t
        conns = [open_readonly(p) for p in paths]
        hits = conns[0].execute("SELECT rowid FROM segment_fts WHERE segment_fts MATCH ? "
                                "ORDER BY rank LIMIT 5", ("vlan backup",)).fetchall()
        cold_s = time.perf_counter() - t
        for c in conns:
            c.close()
        t = time.perf_counter()
        cache.paths_for(GUILD)
        warm_s = time.perf_counter() - t
    finally:
        if server is not None:
            server.stop()
    con = sqlite3.connect(path)
    segments = con.execute("SELECT count(*) FROM segment").fetchone()[0]
    con.close()
    return {"hours": hours, "store": store_kind, "segments": segments,
            "shard_mb": round(info.size / 1e6, 1), "build_s": round(build_s, 1),
            "publish_after_one_clip_s": round(publish_s, 3),
            "answer_cold_fetch_s": round(fetched_s, 3),
            "answer_cold_start_s": round(cold_s, 3), "answer_warm_check_s": round(warm_s, 4),
            "fts_hits": len(hits)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, nargs="+", default=[10, 100])
    ap.add_argument("--store", choices=["moto", "local"], default="moto")
    ap.add_argument("--keep", type=Path, help="work directory to keep (default: a temp dir)")
    args = ap.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = [run(h, args.store, workdir) for h in args.hours]
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
