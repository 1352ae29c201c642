"""Short WAV clips of quiet noise: real audio every engine decodes, nothing it must recognise."""

from __future__ import annotations

import io
import wave

import numpy as np


def noise_wav(seed: int, samples: int = 16000, rate: int = 16000) -> bytes:
    pcm = np.random.default_rng(seed).normal(0, 300, samples).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()
