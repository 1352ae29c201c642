"""Per-speaker jitter buffer: reorder by sequence, detect loss, unwrap 16/32-bit counters.

UDP reorders and drops. Each speaker's packets are held a few frames deep (default 3, i.e. 60 ms)
so a late packet can slot back in; a hole still open when the buffer is full (or its oldest packet
has waited `max_wait` seconds, see `flush`) is declared lost and emitted as a `Frame` with no
payload, so the decoder conceals it (FEC from the next packet when that is at hand, else PLC).

Sequence numbers wrap at 65536 and RTP timestamps at 2**32, from a random base per speaker: both
are unwrapped into Python ints ("extended") relative to the highest sequence seen, so ordering and
time arithmetic never see the wrap. Memory is bounded: at most `depth + 1` packets are held.
"""

from __future__ import annotations

from dataclasses import dataclass

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
DEFAULT_FRAME_SAMPLES = 960  # 20 ms at 48 kHz: what Discord clients (and discord.py) send


def unwrap(value: int, reference: int, modulus: int) -> int:
    """The extended value congruent to `value` that lies closest to the extended `reference`."""
    delta = (value - reference) % modulus
    if delta >= modulus // 2:
        delta -= modulus
    return reference + delta


@dataclass(slots=True)
class Frame:
    """One 20 ms slot in sequence order. `payload` None means lost: conceal it."""

    seq: int
    ts: int
    payload: bytes | None
    next_payload: bytes | None = None  # the following packet, when it carries FEC for this one


@dataclass
class JitterStats:
    released: int = 0
    lost: int = 0
    late: int = 0
    duplicate: int = 0
    discontinuities: int = 0


class JitterBuffer:
    """Reorder one SSRC's packets; `push`/`flush`/`drain` return frames ready for decoding."""

    def __init__(self, depth: int = 3, max_gap: int = 50) -> None:
        if depth < 0:
            raise ValueError("depth must be >= 0")
        self.depth = depth
        self.max_gap = max_gap  # a longer hole (> 1 s) is a discontinuity, not 50 PLC frames
        self._held: dict[int, tuple[int, bytes, float]] = {}
        self._top_seq: int | None = None  # highest extended sequence seen
        self._top_ts = 0  # extended timestamp of that packet
        self._next: int | None = None  # next extended sequence to release
        self._frame_samples = DEFAULT_FRAME_SAMPLES
        self._last_released: tuple[int, int] | None = None  # (seq, ts)
        self.stats = JitterStats()

    def __len__(self) -> int:
        return len(self._held)

    def extend(self, seq: int, ts: int) -> tuple[int, int]:
        """Extended (sequence, timestamp) for a packet's 16-bit sequence and 32-bit timestamp."""
        if self._top_seq is None:
            return seq, ts
        eseq = unwrap(seq, self._top_seq, SEQ_MOD)
        ets = unwrap(ts, self._top_ts, TS_MOD)
        return eseq, ets

    def push(self, seq: int, ts: int, payload: bytes, arrival: float) -> list[Frame]:
        """Add one packet (16-bit seq, 32-bit ts); return the frames that became ready."""
        eseq, ets = self.extend(seq, ts)
        if self._top_seq is None or eseq > self._top_seq:
            self._top_seq, self._top_ts = eseq, ets
        if self._next is not None and eseq < self._next:
            self.stats.late += 1
            return []
        if eseq in self._held:
            self.stats.duplicate += 1
            return []
        self._held[eseq] = (ets, payload, arrival)
        return self._release(lambda: len(self._held) > self.depth)

    def flush(self, now: float, max_wait: float) -> list[Frame]:
        """Release what has waited longer than `max_wait` seconds (speaker went quiet)."""
        def overdue() -> bool:
            return min(a for _, _, a in self._held.values()) <= now - max_wait
        return self._release(lambda: bool(self._held) and overdue())

    def drain(self) -> list[Frame]:
        """Release everything (stream ends)."""
        return self._release(lambda: bool(self._held))

    def _release(self, must_advance) -> list[Frame]:
        out: list[Frame] = []
        while self._held:
            if self._next is None:
                if not must_advance():
                    break
                self._next = min(self._held)
            if self._next in self._held:
                out.append(self._pop(self._next))
                continue
            if not must_advance():
                break
            first = min(self._held)
            gap = first - self._next
            if gap > self.max_gap:
                self.stats.lost += gap
                self.stats.discontinuities += 1
                self._next = first
                continue
            ts_first = self._held[first][0]
            payload_first = self._held[first][1]
            for s in range(self._next, first):
                self.stats.lost += 1
                ts = ts_first - (first - s) * self._frame_samples
                out.append(Frame(s, ts, None, payload_first if s == first - 1 else None))
            self._next = first
        return out

    def _pop(self, eseq: int) -> Frame:
        ets, payload, _ = self._held.pop(eseq)
        if self._last_released is not None and eseq == self._last_released[0] + 1:
            step = ets - self._last_released[1]
            if 120 <= step <= 5760:  # 2.5-120 ms: a plausible Opus frame duration
                self._frame_samples = step
        self._last_released = (eseq, ets)
        self._next = eseq + 1
        self.stats.released += 1
        return Frame(eseq, ets, payload)
