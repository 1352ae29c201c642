"""Shard publishing and answer cold start at 10 and 100 hours of one guild's speech.

    .venv/bin/python bench/shards.py [--hours 10 100] [--part-mb 32] [--store moto|local]
                                     [--keep DIR]

Builds the index the index function would have after `hours` of speech in one month (the worst
case: older months are never republished), with the real schema and the real part layout: rows
go to the month's last part until it holds `--part-mb` (`HOMELABPI_SHARD_PART_MB`), then to a
new one. The history is inserted straight through sqlite3 for speed (about 8 s of speech per
segment, 2.5 words a second, word timings as JSON, FTS5 kept by the schema's triggers, a float16
MiniLM embedding per segment). Then measures:

- publish after one new clip: the clip goes through `indexer.index_transcript` (with random unit
  vectors standing in for the embedder), then `publish` of the part it landed in (backup API
  snapshot, SHA-256, upload), as the index function does. Target: under 1 s at 100 h.
- the same with the last part just short of full: the most a publish can cost at this part size.
- answer cold start: an empty `ShardCache` lists the guild's prefix, downloads every part, opens
  them read-only and runs one FTS query on each; and a warm replica's refresh after the new clip
  (it downloads the changed part only).

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
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homelabpi.asr import Word  # noqa: E402
from homelabpi.index import indexer  # noqa: E402
from homelabpi.index.publish import publish  # noqa: E402
from homelabpi.index.replica import ShardCache  # noqa: E402
from homelabpi.index.shards import Shards, content_bytes, open_readonly  # noqa: E402
from homelabpi.settings import Settings  # noqa: E402
from homelabpi.transcripts import ClipInfo, document, segments_from_words  # noqa: E402

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


def build(root: Path, hours: float, part_bytes: int, rng: random.Random) -> tuple[Shards, int]:
    """`hours` of one-minute clips in one month, split into parts as the indexer splits them."""
    shards = Shards(root, part_bytes=part_bytes)
    clips = int(hours * 60)
    clip = 0
    while clip < clips:
        name = shards.open_part(GUILD, MONTH)
        shards.writer(GUILD, name)  # creates the part with the real schema
        path = shards.path(GUILD, name)
        shards.close()  # the bench fills it itself, through sqlite3
        con = sqlite3.connect(path)
        channel, speaker, _ = _seed(con)
        while clip < clips and content_bytes(con) < part_bytes:
            add_clip(con, rng, channel, speaker, clip)
            clip += 1
            if clip % 100 == 0:
                con.commit()
        con.commit()
        con.close()
    return shards, clips


def fill_until_nearly_full(shards: Shards, rng: random.Random, first_clip: int) -> int:
    """Clips into the last part until one more would fill it; returns the next clip number."""
    name = shards.names(GUILD)[-1]
    path = shards.path(GUILD, name)
    shards.close()
    con = sqlite3.connect(path)
    channel = con.execute("SELECT min(id) FROM channel").fetchone()[0]
    speaker = con.execute("SELECT min(id) FROM speaker").fetchone()[0]
    clip_bytes = 0
    clip = first_clip
    while True:
        before = content_bytes(con)
        if before + 2 * max(clip_bytes, 4096) >= shards.part_bytes:
            break
        add_clip(con, rng, channel, speaker, clip)
        clip += 1
        clip_bytes = max(clip_bytes, content_bytes(con) - before)
    con.commit()
    con.close()
    return clip


class RandomEmbedder:
    """Stands in for MiniLM: the bench measures storage and publishing, not the model."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def encode(self, texts: list[str]) -> np.ndarray:
        v = self.rng.standard_normal((len(texts), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def new_clip(n: int, rng: random.Random) -> tuple[str, dict]:
    """One minute of speech as the transcribe function writes it."""
    info = ClipInfo(guild=GUILD, session="s-bench", clip=f"c-new-{n:07d}", channel="general",
                    speaker="Ana", started_at=datetime.fromtimestamp(T0 + n * 60.0, UTC))
    words = [Word(rng.choice(WORDS), i / WORDS_PER_SECOND, (i + 1) / WORDS_PER_SECOND, 0.9)
             for i in range(int(60 * WORDS_PER_SECOND))]
    doc = document(info, source_key=f"audio/{GUILD}/s-bench/c-new-{n:07d}.ogg",
                   source_etag="e", kind="audio", engine="bench", duration=60.0,
                   segments=segments_from_words(words, "Ana"))
    return f"transcripts/{GUILD}/s-bench/c-new-{n:07d}.json", doc


def index_and_publish(shards: Shards, store, n: int, rng: random.Random,
                      embedder: RandomEmbedder) -> tuple[float, float, float]:
    """(index seconds, publish seconds, MB published) for one new clip."""
    key, doc = new_clip(n, rng)
    t = time.perf_counter()
    done = indexer.index_transcript(shards, key, f"{n:032x}", doc, embedder)
    index_s = time.perf_counter() - t
    t = time.perf_counter()
    info = publish(store, shards.path(GUILD, done.shard), GUILD, done.shard)
    return index_s, time.perf_counter() - t, info.size / 1e6


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


def run(hours: float, part_mb: float, store_kind: str, workdir: Path) -> dict:
    rng = random.Random(42)
    embedder = RandomEmbedder(np.random.default_rng(42))
    t = time.perf_counter()
    shards, clips = build(workdir / f"work-{hours:g}h", hours, int(part_mb * 2**20), rng)
    build_s = time.perf_counter() - t
    store, server = open_store(store_kind, workdir / f"s-{hours:g}h")
    try:
        for name in shards.names(GUILD):  # what the index published as it went
            publish(store, shards.path(GUILD, name), GUILD, name)
        cache = ShardCache(store, workdir / f"cache-{hours:g}h")
        t = time.perf_counter()
        paths = cache.paths_for(GUILD)
        fetched_s = time.perf_counter() - t
        conns = [open_readonly(p) for p in paths]
        hits = [h for c in conns for h in c.execute(
            "SELECT rowid FROM segment_fts WHERE segment_fts MATCH ? ORDER BY rank LIMIT 5",
            ("vlan backup",))]
        cold_s = time.perf_counter() - t
        for c in conns:
            c.close()

        index_s, publish_s, published_mb = index_and_publish(shards, store, clips, rng, embedder)
        t = time.perf_counter()
        cache.paths_for(GUILD)
        refresh_s = time.perf_counter() - t
        refresh_downloads = cache.downloads - len(paths)

        nxt = fill_until_nearly_full(shards, rng, clips + 1)
        _, worst_s, worst_mb = index_and_publish(shards, store, nxt, rng, embedder)
    finally:
        shards.close()
        if server is not None:
            server.stop()
    sizes = [p.stat().st_size for p in shards.paths(GUILD)]
    return {"hours": hours, "store": store_kind, "part_mb": part_mb, "parts": len(sizes),
            "index_mb_at_end": round(sum(sizes) / 1e6, 1), "build_s": round(build_s, 1),
            "index_one_clip_s": round(index_s, 3),
            "publish_after_one_clip_s": round(publish_s, 3), "publish_target_s": 1.0,
            "published_mb": round(published_mb, 1),
            "publish_part_nearly_full_s": round(worst_s, 3),
            "published_nearly_full_mb": round(worst_mb, 1),
            "answer_cold_fetch_s": round(fetched_s, 3),
            "answer_cold_start_s": round(cold_s, 3),
            "answer_refresh_after_clip_s": round(refresh_s, 3),
            "answer_refresh_downloads": refresh_downloads, "fts_hits": len(hits)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, nargs="+", default=[10, 100])
    ap.add_argument("--part-mb", type=float, default=Settings().shard_part_mb,
                    help="shard part size (HOMELABPI_SHARD_PART_MB; default %(default)s)")
    ap.add_argument("--store", choices=["moto", "local"], default="moto")
    ap.add_argument("--keep", type=Path, help="work directory to keep (default: a temp dir)")
    args = ap.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = [run(h, args.part_mb, args.store, workdir) for h in args.hours]
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
