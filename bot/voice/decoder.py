"""Opus decoding per speaker with loss concealment, via discord.py's libopus binding.

`discord.opus.Decoder` (discord.py 2.7.1 opus.py) decodes to 48 kHz stereo s16 and exposes both
concealment paths of `opus_decode`: `decode(None)` runs packet-loss concealment for one frame of
the last packet's duration, and `decode(next_packet, fec=True)` rebuilds a lost frame from the
in-band FEC copy carried by the *next* packet (Discord clients encode with FEC on). We downmix to
mono: speech transcription wants one channel, and it halves what the recorder writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 48_000


class OpusUnavailable(RuntimeError):
    """libopus could not be loaded (install libopus0)."""


def _decoder_class():
    from discord import opus

    if not opus.is_loaded() and not opus._load_default():
        raise OpusUnavailable("libopus not found: install the libopus0 package")
    return opus.Decoder, opus.OpusError


@dataclass
class DecodeStats:
    decoded: int = 0
    concealed: int = 0
    fec: int = 0
    errors: int = 0


class OpusStream:
    """One speaker's decoder state (Opus is stateful: one decoder per SSRC)."""

    def __init__(self) -> None:
        cls, self._error = _decoder_class()
        self._dec = cls()
        self.stats = DecodeStats()

    @staticmethod
    def _mono(pcm: bytes) -> np.ndarray:
        stereo = np.frombuffer(pcm, dtype="<i2").reshape(-1, 2).astype(np.int32)
        return ((stereo[:, 0] + stereo[:, 1]) >> 1).astype(np.int16)

    def decode(self, packet: bytes) -> np.ndarray:
        """Decode one received packet to mono s16; raises ValueError on a corrupt packet."""
        try:
            pcm = self._dec.decode(packet, fec=False)
        except self._error as exc:
            self.stats.errors += 1
            raise ValueError(f"opus decode failed: {exc}") from exc
        self.stats.decoded += 1
        return self._mono(pcm)

    def conceal(self, next_packet: bytes | None = None) -> np.ndarray:
        """Audio for one lost frame: FEC from `next_packet` if given and usable, else PLC."""
        if next_packet is not None:
            try:
                pcm = self._dec.decode(next_packet, fec=True)
            except self._error:
                pcm = b""
            if pcm:
                self.stats.fec += 1
                return self._mono(pcm)
        try:
            pcm = self._dec.decode(None, fec=False)
        except self._error:
            pcm = b""
        self.stats.concealed += 1
        if not pcm:
            return np.zeros(960, dtype=np.int16)
        return self._mono(pcm)
