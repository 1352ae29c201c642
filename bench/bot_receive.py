"""Benchmark: receive-path CPU per active speaker and memory over a simulated hour.

Five simulated speakers take turns and overlap (talk spurts of 2-15 s, pauses of 0.5-8 s), with
1 % packet loss and some reordering. Every datagram is real: libopus frames, RTP with a 0xBEDE
extension, XChaCha20-Poly1305 sealing. It goes through the full pipeline (parse, decrypt, jitter,
Opus decode with concealment, recorder, Ogg Opus clip files, spool commit), simulated faster than
real time. Only the receiving side's CPU is counted (sealing is done outside the measured calls).

    .venv/bin/python bench/bot_receive.py              # one simulated hour
    .venv/bin/python bench/bot_receive.py --minutes 5  # quicker

Targets (issue 3): CPU per active speaker stream < 2 % of one core; memory flat, < 150 MB.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.recorder import Member, Recorder  # noqa: E402
from bot.spool import Spool  # noqa: E402
from bot.voice.receiver import VoiceReceiver  # noqa: E402
from bot.voice.simclient import FRAME, SAMPLE_RATE, SimSpeaker  # noqa: E402
from bot.voice.transport import XCHACHA, TransportCipher  # noqa: E402

T0 = 1_800_000_000.0
FRAME_S = FRAME / SAMPLE_RATE


def voice_like(seconds: float, f0: float, rng: random.Random) -> np.ndarray:
    """Harmonic 'vowels' with a syllable-rate envelope: decodes like speech, costs like speech."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    sig = np.zeros_like(phase)
    for k in range(1, 8):  # in place: keep the bench's own set-up out of the memory figures
        sig += np.sin(k * phase) / k
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t + rng.random() * 6)
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 0.02, t.shape)
    return ((sig * env * 0.15 + noise) * 32767).clip(-32768, 32767).astype(np.int16)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Talker:
    """One speaker's packet stream: pre-encoded Opus frames, sealed on the fly in time order."""

    def __init__(self, idx: int, cipher: TransportCipher, rng: random.Random) -> None:
        self.user_id = 1000 + idx
        self.rng = rng
        self.sim = SimSpeaker(0x10000 + idx, cipher, rng=rng, extension={1: b"\x90"})
        self.frames = list(self.sim.encode(voice_like(20.0, 110 + 25 * idx, rng)))
        self.cursor = 0
        self.active_frames = 0

    def spurts(self, end: float):
        """Yield (send_time, datagram) for the talker's whole session."""
        t = T0 + self.rng.uniform(0, 5)
        ts0 = self.sim.ts0
        while t < end:
            n = int(self.rng.uniform(2, 15) / FRAME_S)
            for i in range(n):
                send = t + i * FRAME_S
                if send >= end:
                    return
                ts = (ts0 + round((send - T0) * SAMPLE_RATE)) & 0xFFFFFFFF
                frame = self.frames[self.cursor % len(self.frames)]
                self.cursor += 1
                self.active_frames += 1
                data = self.sim.seal(frame, self.sim.seq, ts)
                self.sim.seq = (self.sim.seq + 1) & 0xFFFF
                yield send, data
            t += n * FRAME_S + self.rng.uniform(0.5, 8.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--speakers", type=int, default=5)
    ap.add_argument("--format", default="ogg", choices=["ogg", "wav"])
    args = ap.parse_args()

    rng = random.Random(42)
    key = bytes(rng.randrange(256) for _ in range(32))
    cipher = TransportCipher(XCHACHA, key)
    end = T0 + args.minutes * 60
    talkers = [Talker(i, cipher, rng) for i in range(args.speakers)]

    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp))
        clips = {"n": 0, "bytes": 0}

        def on_clip(entry) -> None:
            clips["n"] += 1
            clips["bytes"] += entry.size
            spool.remove(entry)  # stands in for the uploader: keep the disk bounded

        members = {t.user_id: Member(t.user_id, f"speaker{t.user_id}") for t in talkers}
        rec = Recorder(spool, guild_id="bench", channel_id=1, channel_name="bench",
                       self_user_id=1, member_info=members.get, session_id="s-bench",
                       fmt=args.format, on_clip=on_clip)
        rx = VoiceReceiver(rec, cipher=cipher, wants=rec.wants)
        for t in talkers:
            rx.map_ssrc(t.sim.ssrc, t.user_id)

        # Merge the talkers' streams by arrival time (latency 40 ms + jitter, 1 % loss).
        heap: list[tuple[float, int, bytes]] = []
        gens = [t.spurts(end) for t in talkers]

        def pull(i: int) -> None:
            for send, data in gens[i]:
                if rng.random() < 0.01:
                    continue
                heapq.heappush(heap, (send + 0.04 + rng.uniform(0, 0.03), i, data))
                return

        for i in range(len(gens)):
            pull(i)
        cpu = 0.0
        next_tick = T0
        next_report = T0
        rss_samples: list[tuple[float, float]] = []
        wall0 = time.perf_counter()
        setup_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{'sim min':>7} {'rss MB':>7} {'frames':>9} {'clips':>6}", flush=True)
        while heap:
            arrival, i, data = heapq.heappop(heap)
            pull(i)
            c0 = time.process_time()
            while next_tick <= arrival:
                rx.tick(next_tick)
                rec.tick(next_tick)
                next_tick += 0.1
            rx.feed(data, arrival)
            cpu += time.process_time() - c0
            if arrival >= next_report:
                rss_samples.append(((arrival - T0) / 60, rss_mb()))
                if len(rss_samples) % 5 == 1:
                    print(f"{rss_samples[-1][0]:7.1f} {rss_samples[-1][1]:7.1f} "
                          f"{rx.stats.frames:9d} {clips['n']:6d}", flush=True)
                next_report += 60
        c0 = time.process_time()
        rx.close()
        rec.close()
        cpu += time.process_time() - c0
        wall = time.perf_counter() - wall0

    active_s = sum(t.active_frames for t in talkers) * FRAME_S
    st = rx.snapshot()
    rss = [r for _, r in rss_samples]
    warm = rss[min(5, len(rss) - 1)]
    print()
    print(f"simulated        {args.minutes:.0f} min, {args.speakers} speakers, "
          f"{active_s / 60:.1f} speaker-minutes of speech ({args.format} clips)")
    print(f"wall time        {wall:.1f} s ({args.minutes * 60 / wall:.0f}x real time)")
    print(f"receive CPU      {cpu:.1f} s = {100 * cpu / active_s:.2f} % of one core "
          f"per active speaker stream (target < 2 %)")
    print(f"frames           {st['frames']} (lost {st['lost']}, fec {st['fec_recovered']}, "
          f"plc {st['concealed']}, errors {st['decrypt_errors'] + st['decode_errors']})")
    print(f"clips            {clips['n']} ({clips['bytes'] / 2**20:.1f} MB)")
    print(f"memory (RSS)     start {rss[0]:.1f} MB, after warm-up {warm:.1f} MB, "
          f"max {max(rss):.1f} MB, end {rss[-1]:.1f} MB "
          f"(process peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB, "
          f"of which set-up before the simulation {setup_peak:.1f} MB; target flat < 150 MB)")
    print(f"growth after warm-up: {rss[-1] - warm:+.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
