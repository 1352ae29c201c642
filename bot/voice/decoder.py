"""Opus decoding per speaker with loss concealment: libopus through ctypes, decoding to mono.

libopus itself offers both concealment paths of `opus_decode`: a NULL packet runs packet-loss
concealment (PLC) for one frame, and `decode_fec=1` with the *next* packet rebuilds the lost frame
from the in-band FEC copy it carries (Discord clients encode with FEC on). We open the decoder
with one channel: libopus downmixes Discord's stereo inside the decoder, which is about 3x
cheaper than decoding stereo with `discord.opus.Decoder` and averaging in Python (measured with
bench/bot_receive.py), and speech transcription wants one channel anyway.

The library is the one discord.py uses: if `discord.opus.load_opus(path)` loaded a custom build
we open that same file, else `ctypes.util.find_library("opus")` (package libopus0).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 48_000
MAX_FRAME = 5760  # 120 ms at 48 kHz: the longest Opus packet
DEFAULT_FRAME = 960

_c_int16_p = ctypes.POINTER(ctypes.c_int16)


class OpusUnavailable(RuntimeError):
    """libopus could not be loaded (install libopus0)."""


_LIB: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _LIB
    if _LIB is not None:
        return _LIB
    name = None
    try:
        from discord import opus

        if opus.is_loaded():
            name = opus._lib._name  # whatever library the bot loaded explicitly
    except ImportError:
        pass
    name = name or ctypes.util.find_library("opus")
    if name is None:
        raise OpusUnavailable("libopus not found: install the libopus0 package")
    # A CDLL of our own: discord.py sets errcheck hooks on its function objects, and we want
    # libopus's return codes as they are (negative = error) with our own signatures.
    lib = ctypes.CDLL(name)
    create = lib.opus_decoder_create
    create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    create.restype = ctypes.c_void_p
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_decoder_destroy.restype = None
    lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, _c_int16_p,
                                ctypes.c_int, ctypes.c_int]
    lib.opus_decode.restype = ctypes.c_int
    lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
    lib.opus_packet_get_nb_samples.restype = ctypes.c_int
    lib.opus_strerror.argtypes = [ctypes.c_int]
    lib.opus_strerror.restype = ctypes.c_char_p
    _LIB = lib
    return lib


@dataclass
class DecodeStats:
    decoded: int = 0
    concealed: int = 0
    fec: int = 0
    errors: int = 0


class OpusStream:
    """One speaker's decoder state (Opus is stateful: one decoder per SSRC)."""

    def __init__(self) -> None:
        self._lib = _lib()
        err = ctypes.c_int()
        self._state = self._lib.opus_decoder_create(SAMPLE_RATE, 1, ctypes.byref(err))
        if err.value != 0 or not self._state:
            raise OpusUnavailable(f"opus_decoder_create failed: {err.value}")
        self._buf = (ctypes.c_int16 * MAX_FRAME)()
        self._ptr = ctypes.cast(self._buf, _c_int16_p)
        self._last_samples = DEFAULT_FRAME
        self.stats = DecodeStats()

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state:
            self._lib.opus_decoder_destroy(state)
            self._state = None

    def _run(self, packet: bytes | None, frame_size: int, fec: int) -> int:
        n = len(packet) if packet is not None else 0
        return self._lib.opus_decode(self._state, packet, n, self._ptr, frame_size, fec)

    def _out(self, n: int) -> np.ndarray:
        return np.frombuffer(self._buf, dtype=np.int16, count=n).copy()

    def decode(self, packet: bytes) -> np.ndarray:
        """Decode one received packet to mono s16; raises ValueError on a corrupt packet."""
        n = self._run(packet, MAX_FRAME, 0)
        if n < 0:
            self.stats.errors += 1
            raise ValueError(f"opus decode failed: {self._lib.opus_strerror(n).decode()}")
        self._last_samples = n or self._last_samples
        self.stats.decoded += 1
        return self._out(n)

    def conceal(self, next_packet: bytes | None = None) -> np.ndarray:
        """Audio for one lost frame: FEC from `next_packet` if given and usable, else PLC."""
        size = self._last_samples
        if next_packet is not None:
            n = self._run(next_packet, size, 1)
            if n > 0:
                self.stats.fec += 1
                return self._out(n)
        n = self._run(None, size, 0)
        self.stats.concealed += 1
        if n <= 0:
            return np.zeros(size, dtype=np.int16)
        return self._out(n)
