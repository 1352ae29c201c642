"""Jitter buffer (reorder, loss, wrap, bounds) and DAVE passthrough/decrypt policy."""

from __future__ import annotations

import random

from bot_helpers import FakeDave

from bot.voice.dave import DaveDecryptor, has_dave_trailer
from bot.voice.jitter import JitterBuffer, unwrap


def _feed(jb: JitterBuffer, seqs: list[int], ts0: int = 0, base: int = 0) -> list:
    out = []
    for s in seqs:
        out += jb.push((base + s) & 0xFFFF, (ts0 + s * 960) & 0xFFFFFFFF, f"p{s}".encode(), 0.0)
    return out


def test_unwrap_crosses_both_directions() -> None:
    assert unwrap(2, 65534, 1 << 16) == 65538
    assert unwrap(65534, 65538, 1 << 16) == 65534
    assert unwrap(5, 10, 1 << 16) == 5


def test_reorder_and_sequence_wrap() -> None:
    jb = JitterBuffer(depth=3)
    order = [0, 2, 1, 3, 5, 4, 6, 7, 9, 8, 10, 11]
    out = _feed(jb, order, ts0=0xFFFFF000, base=65530) + jb.drain()
    assert [f.payload for f in out] == [f"p{s}".encode() for s in range(12)]
    seqs = [f.seq for f in out]
    assert seqs == sorted(seqs) and seqs[-1] - seqs[0] == 11  # no jump at the 65536 wrap
    ts = [f.ts for f in out]
    assert all(b - a == 960 for a, b in zip(ts, ts[1:], strict=False))  # 2**32 wrap unwrapped
    assert jb.stats.lost == 0


def test_loss_is_reported_with_fec_candidate() -> None:
    jb = JitterBuffer(depth=2)
    out = _feed(jb, [0, 1, 2, 5, 6, 7, 8]) + jb.drain()
    assert [f.seq for f in out] == list(range(9))
    lost = [f for f in out if f.payload is None]
    assert [f.seq for f in lost] == [3, 4]
    assert lost[0].next_payload is None  # only the frame right before a packet has FEC
    assert lost[1].next_payload == b"p5"
    assert [f.ts for f in lost] == [3 * 960, 4 * 960]
    assert jb.stats.lost == 2


def test_late_and_duplicate_packets_are_dropped_and_counted() -> None:
    jb = JitterBuffer(depth=1)
    out = _feed(jb, [0, 1, 2, 3, 2, 3, 3])
    out += jb.drain()
    assert [f.seq for f in out] == [0, 1, 2, 3]
    assert jb.stats.late + jb.stats.duplicate == 3


def test_memory_is_bounded_under_random_arrival() -> None:
    rng = random.Random(5)
    jb = JitterBuffer(depth=4)
    seqs = list(range(5000))
    for i in range(0, len(seqs) - 3, 3):  # local shuffles
        chunk = seqs[i:i + 3]
        rng.shuffle(chunk)
        seqs[i:i + 3] = chunk
    seqs = [s for s in seqs if rng.random() > 0.05]
    peak = 0
    released = []
    for s in seqs:
        released += jb.push(s & 0xFFFF, s * 960, b"x", 0.0)
        peak = max(peak, len(jb))
    released += jb.drain()
    assert peak <= 5
    assert [f.seq for f in released] == list(range(released[0].seq, released[-1].seq + 1))


def test_long_gap_is_a_discontinuity_not_a_flood_of_plc() -> None:
    jb = JitterBuffer(depth=1, max_gap=50)
    out = _feed(jb, [0, 1, 500, 501]) + jb.drain()
    assert [f.seq for f in out] == [0, 1, 500, 501]
    assert jb.stats.discontinuities == 1 and jb.stats.lost == 498


def test_flush_releases_after_max_wait() -> None:
    jb = JitterBuffer(depth=3)
    assert jb.push(10, 0, b"a", 100.0) == []
    assert jb.flush(100.05, 0.1) == []
    assert [f.payload for f in jb.flush(100.2, 0.1)] == [b"a"]


def test_dave_trailer_detection() -> None:
    dave = FakeDave({1})
    enc = dave.encrypt(1, b"\xfc" + b"o" * 30, 7)
    assert has_dave_trailer(enc)
    assert not has_dave_trailer(b"\xfc" + b"o" * 30)
    assert not has_dave_trailer(b"\x01\xfa\xfa")  # too short to hold a trailer
    assert not has_dave_trailer(b"x" * 20 + b"\xff\xfa\xfa")  # size byte beyond the frame


def test_dave_passthrough_decrypt_and_failure() -> None:
    session = FakeDave({1})
    current = {"s": session}
    d = DaveDecryptor(lambda: current["s"])
    plain = b"\xfc" + b"opus" * 10
    assert d.decrypt(1, plain) == plain  # unmarked frame: transition passthrough
    assert session.decrypt_calls == 0
    assert d.decrypt(1, session.encrypt(1, plain, 3)) == plain
    assert d.decrypt(2, session.encrypt(2, plain, 3)) is None  # no decryptor for that user yet
    tampered = bytearray(session.encrypt(1, plain, 4))
    tampered[0] ^= 1
    assert d.decrypt(1, bytes(tampered)) is None
    current["s"] = None  # session torn down mid-transition
    assert d.decrypt(1, session.encrypt(1, plain, 5)) is None
    assert (d.stats.passthrough, d.stats.decrypted, d.stats.failed, d.stats.no_session) == \
        (1, 1, 2, 1)
