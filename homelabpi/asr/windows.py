"""PCM chunks of any length → windows of bounded length, cut where it is quietest.

Whisper takes its input whole, so an hour-long recording goes to it one window at a time: memory
stays the size of one window, and each window's offset is counted in samples, so word times stay
exact across windows. A cut at the quietest 20 ms near the end of a window rarely falls inside a
word; the audio after the cut starts the next window.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from homelabpi.audio import SAMPLE_RATE

FRAME = SAMPLE_RATE // 50  # 20 ms, the resolution a cut is chosen at


@dataclass(frozen=True)
class Window:
    offset: float  # seconds from the start of the recording
    samples: np.ndarray  # float32 in [-1, 1], what faster-whisper takes

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def windows(chunks: Iterable[bytes], seconds: float = 120.0,
            search: float = 10.0) -> Iterator[Window]:
    """Windows of at most `seconds`, each cut in its last `search` seconds at the quietest frame."""
    size, reach = int(seconds * SAMPLE_RATE), int(search * SAMPLE_RATE)
    if not 0 < reach < size:
        raise ValueError(f"window search ({search} s) must be shorter than the window "
                         f"({seconds} s)")
    pending = bytearray()
    start = 0  # samples before `pending`
    for chunk in chunks:
        pending += chunk
        while len(pending) // 2 >= size:
            head = np.frombuffer(bytes(pending[: size * 2]), dtype="<i2")
            cut = quietest_cut(head, size - reach, size)
            yield Window(start / SAMPLE_RATE, head[:cut].astype(np.float32) / 32768.0)
            del pending[: cut * 2]
            start += cut
    if len(pending) >= 2:
        tail = np.frombuffer(bytes(pending[: len(pending) // 2 * 2]), dtype="<i2")
        yield Window(start / SAMPLE_RATE, tail.astype(np.float32) / 32768.0)


def quietest_cut(samples: np.ndarray, lo: int, hi: int) -> int:
    """The sample index in [lo, hi) that starts the frame with the least energy."""
    frames = (hi - lo) // FRAME
    if frames < 1:
        return hi
    span = samples[lo: lo + frames * FRAME].astype(np.float32).reshape(frames, FRAME)
    return lo + int(np.argmin((span * span).sum(axis=1))) * FRAME
