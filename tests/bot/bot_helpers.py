"""Test helpers: a DAVE session faked only at its encrypt/decrypt calls, audio analysis."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import av
import numpy as np

from bot.voice.dave import MARKER


def _uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_uleb(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[i]
        n |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return n, i
        shift += 7


class FakeDave:
    """Stands in for davey.DaveSession at `decrypt` only (and gives the sender `encrypt`).

    Frames use DAVE's real trailer layout (8-byte tag, ULEB128 nonce, size byte, 0xFAFA) so the
    receiver's marker detection is exercised for real; the cipher is a keyed XOR + HMAC tag.
    """

    ready = True

    def __init__(self, members: set[int]) -> None:
        self.members = set(members)
        self.decrypt_calls = 0

    def _stream(self, user_id: int, nonce: int, n: int) -> bytes:
        seed = f"{user_id}:{nonce}".encode()
        out = b""
        block = 0
        while len(out) < n:
            out += hashlib.sha256(seed + block.to_bytes(4, "big")).digest()
            block += 1
        return out[:n]

    def encrypt(self, user_id: int, frame: bytes, nonce: int) -> bytes:
        keystream = self._stream(user_id, nonce, len(frame))
        ct = bytes(a ^ b for a, b in zip(frame, keystream, strict=True))
        tag = hmac.new(str(user_id).encode(), _uleb(nonce) + ct, "sha256").digest()[:8]
        trailer = tag + _uleb(nonce)
        size = len(trailer) + 1 + len(MARKER)
        return ct + trailer + bytes([size]) + MARKER

    def decrypt(self, user_id: int, media_type, packet: bytes) -> bytes:
        self.decrypt_calls += 1
        if user_id not in self.members:
            raise ValueError("Failed to decrypt: NoDecryptorForUser")
        size = packet[-3]
        trailer = packet[-size:]
        ct = packet[:-size]
        tag = trailer[:8]
        nonce, _ = _read_uleb(trailer, 8)
        want = hmac.new(str(user_id).encode(), _uleb(nonce) + ct, "sha256").digest()[:8]
        if not hmac.compare_digest(tag, want):
            raise ValueError("Failed to decrypt: DecryptionFailed")
        return bytes(a ^ b for a, b in zip(ct, self._stream(user_id, nonce, len(ct)), strict=True))


def decode_clip(path: Path) -> tuple[np.ndarray, int]:
    """Decode a clip file with PyAV to mono float samples."""
    with av.open(str(path)) as c:
        chunks = []
        rate = c.streams.audio[0].codec_context.sample_rate
        for frame in c.decode(audio=0):
            arr = frame.to_ndarray()
            if arr.dtype.kind == "i":
                arr = arr.astype(np.float32) / 32768.0
            if arr.ndim == 2 and arr.shape[0] > 1 and not frame.format.is_planar:
                arr = arr.reshape(-1, frame.layout.nb_channels).T
            chunks.append(arr.mean(axis=0) if arr.ndim == 2 else arr)
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32), rate


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    """Frequency of the strongest FFT bin."""
    spec = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spec))])

