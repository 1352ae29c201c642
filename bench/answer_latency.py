"""Answer latency at 10, 100 and 1,000 hours of synthetic transcripts, and peak memory.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/answer_latency.py [--hours 10 100 1000] [--dir D]

Shards are written directly with sqlite3 (same schema: created by `migrate`), per month and split
into parts of `--part-mb` (`HOMELABPI_SHARD_PART_MB`) as the index function splits them, at
~450 segments an hour (8 s segments of ~20 words, five speakers, word timings included).
Corpus embeddings are random unit vectors, because embedding 1,000 hours with MiniLM on two cores
takes hours; the dense search cost does not depend on what the vectors hold. The query
embedding is real (MiniLM). The reader is a full-size DistilBERT (base config) with random
weights: same architecture, same cost as the trained SQuAD model.

Each size is measured in a fresh process (the answer function's situation), so its peak RSS is
the answer function's: torch, MiniLM, the reader, the dense index and SQLite's caches.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

SEG_SECONDS = 8.0
SESSION_HOURS = 2.0
SPEAKERS = ["Alice", "Bob", "Carol", "Dave", "Erin"]
TOPIC = ("nas switch router vlan backup snapshot grafana prometheus proxmox k3s pihole dns dhcp "
         "ups battery certificate cloudflare jellyfin plex docker compose traefik nginx zfs "
         "raid disk scrub ssd nvme firewall wireguard tailscale vpn ansible terraform kubernetes "
         "node pod ingress mqtt zigbee homeassistant camera frigate cron restic borg b2 s3 minio "
         "port ip subnet gateway mikrotik ubiquiti unifi opnsense pfsense ceph longhorn etcd"
         ).split()
COMMON = ("the a to and of it is that i we you on for this in so was just like yeah okay but "
          "with have be then if do not think can it's what they there at one up now or out get "
          "about all maybe need go know right time back also really set should still because "
          "yesterday tonight config update restart running working broken fixed new old").split()
QUESTIONS = [
    "What is the NAS IP?", "What port is Grafana on?", "Which VLAN are the cameras on?",
    "When does the backup run?", "What did Bob say about the switch?",
    "How much RAM does the Proxmox host have?", "Which version of k3s do we run?",
    "What did we decide about wireguard yesterday?", "Where does restic send the snapshots?",
    "What did Alice say about the UPS battery last week?", "How is traefik configured?",
    "Which disk failed the scrub?", "What is the DNS server for the IoT subnet?",
    "Who set up tailscale?", "What did Carol change on the firewall?",
]


def _words(rng: random.Random) -> list[str]:
    n = rng.randint(12, 28)
    return [rng.choice(TOPIC) if rng.random() < 0.25 else COMMON[min(int(rng.paretovariate(1.1))
                                                                     - 1, len(COMMON) - 1)]
            for _ in range(n)]


def _new_part(shards, guild: str, name: str):
    """A part created with the real schema, then opened for bulk inserts."""
    import sqlite3

    shards.writer(guild, name)  # creates the schema through migrate()
    shards.close()
    conn = sqlite3.connect(shards.path(guild, name))
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=off")
    conn.execute("INSERT OR IGNORE INTO guild (id) VALUES (?)", (guild,))
    conn.execute("INSERT INTO channel (guild_id, name, discord_id) VALUES (?, 'lab', '')",
                 (guild,))
    for sp in SPEAKERS:
        conn.execute("INSERT INTO speaker (guild_id, name, discord_id) VALUES (?, ?, '')",
                     (guild, sp))
    return conn


def _close(conn) -> None:
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def build(root: Path, hours: float, part_bytes: int, seed: int = 7) -> dict:
    """Write shards for `hours` of talk under `root`; returns counts."""
    from homelabpi.answering import embeddings
    from homelabpi.index.shards import Shards, content_bytes, shard_name

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    guild = "bench"
    n_sessions = max(1, int(hours / SESSION_HOURS))
    per_session = int(SESSION_HOURS * 3600 / SEG_SECONDS)
    months = min(12, max(1, int(hours // 80) or 1))
    shards = Shards(root, part_bytes=part_bytes)
    t0 = time.perf_counter()
    total = 0
    for m in range(months):
        month = f"2026-{m + 1:02d}"
        part = 1
        conn = _new_part(shards, guild, month)
        sessions_here = [s for s in range(n_sessions) if s % months == m]
        for s in sessions_here:
            if content_bytes(conn) >= part_bytes:  # full: the next session opens a new part
                _close(conn)
                part += 1
                conn = _new_part(shards, guild, shard_name(month, part))
            start = datetime(2026, m + 1, 1 + (s // months) % 27, 18, tzinfo=UTC).timestamp()
            sid = f"s-{m:02d}-{s:05d}"
            conn.execute("INSERT INTO session VALUES (?, ?, 1, ?, ?)",
                         (sid, guild, start, start + SESSION_HOURS * 3600))
            clip_ids = []
            for k in range(len(SPEAKERS)):
                cur = conn.execute(
                    "INSERT INTO clip (key, etag, audio_key, session_id, speaker_id, channel_id, "
                    "started_at, duration, status, error, engine, kind, indexed_at) VALUES "
                    "(?, 'e', ?, ?, ?, 1, ?, ?, 'ok', NULL, 'bench', 'audio', ?)",
                    (f"transcripts/{guild}/{sid}/c{k}.json", f"audio/{guild}/{sid}/c{k}.ogg", sid,
                     k + 1, start, SESSION_HOURS * 3600, time.time()))
                clip_ids.append(cur.lastrowid)
            rows = []
            for j in range(per_session):
                k = rng.randrange(len(SPEAKERS))
                off = j * SEG_SECONDS
                ws = _words(rng)
                step = (SEG_SECONDS - 0.5) / len(ws)
                words = [{"text": w, "start": round(off + i * step, 3),
                          "end": round(off + (i + 1) * step - 0.05, 3), "conf": 0.9}
                         for i, w in enumerate(ws)]
                rows.append((clip_ids[k], sid, k + 1, start + off, start + off + SEG_SECONDS - 0.5,
                             " ".join(ws), json.dumps(words), 0.9))
            vecs = nrng.normal(size=(per_session, 384)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            codes = embeddings.sign_code(vecs)
            first = conn.execute("SELECT coalesce(max(id), 0) FROM segment").fetchone()[0] + 1
            conn.executemany("INSERT INTO segment (clip_id, session_id, speaker_id, channel_id, "
                             "start, end, text, words, confidence) VALUES (?, ?, ?, 1, ?, ?, ?, ?, "
                             "?)", rows)
            vec_rows = [(first + i, embeddings.DEFAULT_NAME, embeddings.to_blob(vecs[i]),
                         codes[i].tobytes()) for i in range(per_session)]
            conn.executemany("INSERT INTO embedding (segment_id, model, vector, code) "
                             "VALUES (?, ?, ?, ?)", vec_rows)
            total += per_session
        _close(conn)
    return {"segments": total, "months": months, "shards": len(shards.names(guild)),
            "sessions": n_sessions, "build_s": round(time.perf_counter() - t0, 1)}


def full_size_reader(dest: Path) -> Path:
    """DistilBERT-base architecture, random weights: the trained model's cost, none of its skill."""
    from transformers import DistilBertConfig, DistilBertForQuestionAnswering, DistilBertTokenizer

    from homelabpi.answering.embeddings import bundled_model_dir

    if not (dest / "config.json").exists():
        tok = DistilBertTokenizer(vocab=str(bundled_model_dir() / "vocab.txt"))
        cfg = DistilBertConfig(vocab_size=tok.vocab_size)  # dim 768, 6 layers: the SQuAD model's
        DistilBertForQuestionAnswering(cfg).save_pretrained(dest)
        tok.save_pretrained(dest)
    return dest


def _pct(xs: list[float], p: float) -> float:
    return round(float(np.percentile(np.array(xs) * 1000, p)), 1)


def measure(root: Path, reader_dir: Path, rounds: int) -> dict:
    """Latencies in this (fresh) process: cold first question, then warm p50/p95."""
    from homelabpi.answering import answer as answering
    from homelabpi.answering import embeddings, reader, retrieval
    from homelabpi.index.readers import ReaderPool
    from homelabpi.index.shards import Shards, open_readonly
    from homelabpi.settings import Settings

    settings = Settings(data_dir=root, torch_threads=int(os.environ.get("BENCH_THREADS", "2")))
    t = time.perf_counter()
    emb = embeddings.get(settings)
    rdr = reader.Reader(reader_dir, settings.torch_threads)
    load_s = time.perf_counter() - t
    shards = Shards(root)
    now = datetime(2026, 12, 31, tzinfo=UTC)

    # Connections are lent by the pool the answer function uses (`Runtime.guild_readers`).
    pool = ReaderPool(open_readonly)

    def retrieve(text: str) -> list:
        with pool.borrow(shards.paths("bench")) as conns:
            q = answering.understand(conns, text, now=now)
            qvec = emb.encode_one(q.topic or q.text)
            hits = retrieval.hybrid(conns, q.terms, qvec, emb.name, q.filters, 20)
            return retrieval.passages(conns, hits, 5)

    def ask(text: str, with_reader: bool) -> dict:
        with pool.borrow(shards.paths("bench")) as conns:
            q = answering.understand(conns, text, now=now)
            return answering.answer(conns, q, embedder=emb, reader=rdr if with_reader else None,
                                    min_score=0.0).as_dict()

    t = time.perf_counter()
    retrieve(QUESTIONS[0])
    cold = time.perf_counter() - t
    out: dict = {"load_models_s": round(load_s, 2), "cold_first_retrieval_ms": round(cold * 1000)}
    for name, fn in (("retrieval", lambda q: retrieve(q)),
                     ("answer_passage", lambda q: ask(q, False)),
                     ("answer_reader", lambda q: ask(q, True))):
        times = []
        for i in range(rounds):
            q = QUESTIONS[i % len(QUESTIONS)]
            t = time.perf_counter()
            fn(q)
            times.append(time.perf_counter() - t)
        out[name] = {"p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95)}
    # the reader alone on the top 3 passages, as the answer function runs it
    times, windows = [], []
    for i in range(rounds):
        ps = retrieve(QUESTIONS[i % len(QUESTIONS)])[:3]
        if not ps:  # a question whose filters match nothing: no reading to time
            continue
        t = time.perf_counter()
        rdr.read(QUESTIONS[i % len(QUESTIONS)], [p.text for p in ps])
        times.append(time.perf_counter() - t)
        windows.append(len(rdr.windows(QUESTIONS[0], [p.text for p in ps])["input_ids"]))
    out["reader_top3"] = {"p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95),
                          "windows_mean": round(float(np.mean(windows)), 2)}
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--dir", type=Path, help="Keep shards here (reused when present).")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--part-mb", type=float, default=None,
                    help="shard part size (default: HOMELABPI_SHARD_PART_MB's default, 64)")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--reader", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.reader, args.rounds)))
        return
    base = args.dir or Path(tempfile.mkdtemp(prefix="homelabpi-bench-"))
    reader_dir = full_size_reader(base / "reader")
    print(f"torch threads: {os.environ.get('BENCH_THREADS', '2')}; shards under {base}")
    from homelabpi.settings import Settings

    part_mb = args.part_mb or Settings().shard_part_mb
    for hours in args.hours:
        root = base / f"{hours:g}h-{part_mb:g}mb"
        if not (root / "bench").is_dir():
            info = build(root, hours, int(part_mb * 2**20))
            print(f"{hours:g} h: built {info['segments']} segments in {info['months']} month(s), "
                  f"{info['shards']} shard file(s), in {info['build_s']} s")
        size = sum(p.stat().st_size for p in root.rglob("*.sqlite3")) / 1e6
        res = subprocess.run([sys.executable, __file__, "--measure", str(root), "--reader",
                              str(reader_dir), "--rounds", str(args.rounds)],
                             capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"measuring {hours:g} h failed:\n{res.stderr[-3000:]}")
        fig = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{hours:g} h ({size:.0f} MB of shards): " + json.dumps(fig))


if __name__ == "__main__":
    main()
