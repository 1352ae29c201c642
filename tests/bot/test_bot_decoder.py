"""Opus decoding with concealment, and a corrupt-but-authentic packet inside the receiver."""

from __future__ import annotations

import random

import numpy as np
from bot_helpers import dominant_hz

from bot.voice.decoder import OpusStream
from bot.voice.receiver import VoiceReceiver
from bot.voice.simclient import SimSpeaker, make_encoder, tone
from bot.voice.transport import XCHACHA, TransportCipher


def _frames(pcm: np.ndarray) -> list[bytes]:
    enc = make_encoder()
    st = np.repeat(pcm, 2)
    return [enc.encode(st[2 * i:2 * (i + 960)].tobytes(), 960) for i in range(0, len(pcm), 960)]


def test_decode_fec_and_plc() -> None:
    frames = _frames(tone(440, 1.0))
    d = OpusStream()
    out = [d.decode(f) for f in frames[:20]]
    assert all(len(x) == 960 for x in out)
    fec = d.conceal(frames[21])  # frame 20 lost, 21 at hand: rebuilt from its FEC copy
    plc = d.conceal(None)
    assert len(fec) == 960 and len(plc) == 960
    assert d.stats.fec == 1 and d.stats.concealed == 1
    tail = np.concatenate([d.decode(f) for f in frames[22:]]).astype(np.float32)
    assert abs(dominant_hz(tail, 48000) - 440) < 5


def test_garbage_raises_and_counts() -> None:
    d = OpusStream()
    try:
        d.decode(b"\xff\xff\xff")  # code 3 packet with an impossible frame count
    except ValueError:
        pass
    else:
        raise AssertionError("corrupt Opus was accepted")
    assert d.stats.errors == 1


class _Sink:
    def __init__(self) -> None:
        self.frames: list[tuple[float, int]] = []

    def write(self, user_id: int, pcm: np.ndarray, start: float) -> None:
        self.frames.append((start, len(pcm)))

    def end(self, user_id: int) -> None:
        pass


def test_undecodable_frame_costs_one_concealed_slot() -> None:
    cipher = TransportCipher(XCHACHA, bytes(32))
    sink = _Sink()
    rx = VoiceReceiver(sink, cipher=cipher)
    rx.map_ssrc(9, 1)
    sp = SimSpeaker(9, cipher, rng=random.Random(0))
    pkts = sp.talk(tone(300, 0.4), 1000.0)
    # An authentic packet (correct AEAD) whose Opus payload is garbage: a buggy sender.
    bad = sp.seal(b"\xff\xff\xff", pkts[10].seq, pkts[10].ts)
    for i, p in enumerate(pkts):
        rx.feed(bad if i == 10 else p.data, p.send_time)
    rx.close()
    st = rx.snapshot()
    assert st["decode_errors"] == 1 and st["frames"] == 20
    starts = [s for s, _ in sink.frames]
    assert all(abs((b - a) - 0.02) < 1e-6 for a, b in zip(starts, starts[1:], strict=False))


def test_idle_streams_are_released_but_mapping_kept() -> None:
    cipher = TransportCipher(XCHACHA, bytes(32))
    sink = _Sink()
    rx = VoiceReceiver(sink, cipher=cipher, idle_stream_timeout=60.0)
    rx.map_ssrc(9, 1)
    sp = SimSpeaker(9, cipher, rng=random.Random(0))
    for p in sp.talk(tone(300, 0.2), 1000.0):
        rx.feed(p.data, p.send_time)
    rx.tick(1030.0)
    assert rx.snapshot()["active_streams"] == 1
    rx.tick(1061.0)
    assert rx.snapshot()["active_streams"] == 0 and rx.user_for(9) == 1
    assert len(sink.frames) == 10
