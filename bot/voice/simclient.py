"""A simulated Discord voice sender: real Opus, real RTP, real transport AEAD.

Used by the tests and the benchmark to produce exactly what the receiver gets from Discord: Opus
frames from libopus (discord.opus.Encoder, the encoder discord.py sends with), RTP headers with a
random sequence/timestamp base, optional 0xBEDE header extension, RTP padding, and the `_rtpsize`
sealing discord.py 2.7 uses in `_encrypt_aead_xchacha20_poly1305_rtpsize`. An optional
`frame_transform` (e.g. a DAVE encryptor) is applied to each Opus frame before sealing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from bot.voice import rtp
from bot.voice.transport import TransportCipher

SAMPLE_RATE = 48_000
FRAME = 960


def make_encoder(bitrate_kbps: int = 32):
    """A libopus encoder set up like a voice client: VoIP mode, in-band FEC on."""
    from discord import opus

    return opus.Encoder(application="voip", bitrate=bitrate_kbps, fec=True,
                        expected_packet_loss=0.15, bandwidth="full", signal_type="voice")


def tone(freq: float, seconds: float, amplitude: float = 0.3, phase: float = 0.0) -> np.ndarray:
    """A mono s16 sine tone at 48 kHz."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * freq * t + phase) * amplitude * 32767).astype(np.int16)


@dataclass
class SentPacket:
    """One datagram and the facts the test needs about it."""

    seq: int
    ts: int
    send_time: float
    data: bytes


class SimSpeaker:
    """One remote speaker (one SSRC) sending 20 ms Opus frames."""

    def __init__(self, ssrc: int, cipher: TransportCipher, *, rng: random.Random | None = None,
                 seq0: int | None = None, ts0: int | None = None, padding: int = 0,
                 extension: dict[int, bytes] | None = None, bitrate_kbps: int = 32,
                 frame_transform: Callable[[bytes, int], bytes] | None = None) -> None:
        self.rng = rng or random.Random()
        self.ssrc = ssrc
        self.cipher = cipher
        self.seq = self.rng.randrange(1 << 16) if seq0 is None else seq0
        self.ts0 = self.rng.randrange(1 << 32) if ts0 is None else ts0
        self.counter = self.rng.randrange(1 << 32)
        self.padding = padding
        self.ext_body = rtp.build_one_byte_extensions(extension) if extension else None
        self.encoder = make_encoder(bitrate_kbps)
        self.frame_transform = frame_transform
        self.frames_sent = 0
        self.epoch: float | None = None  # wall time of RTP timestamp ts0

    def encode(self, pcm: np.ndarray) -> Iterator[bytes]:
        """Opus frames for mono s16 `pcm` (padded to 20 ms frames; sent as stereo)."""
        pcm = np.asarray(pcm, dtype=np.int16)
        if pcm.shape[0] % FRAME:
            pcm = np.concatenate([pcm, np.zeros(FRAME - pcm.shape[0] % FRAME, np.int16)])
        stereo = np.repeat(pcm, 2)
        for i in range(0, pcm.shape[0], FRAME):
            yield self.encoder.encode(stereo[2 * i:2 * (i + FRAME)].tobytes(), FRAME)

    def seal(self, opus_frame: bytes, seq: int, ts: int) -> bytes:
        """One datagram: header (+ext preamble) | AEAD(ext body | frame | padding) | counter."""
        if self.frame_transform is not None:
            opus_frame = self.frame_transform(opus_frame, self.frames_sent)
        ext_words = len(self.ext_body) // 4 if self.ext_body is not None else None
        aad = rtp.build_header(sequence=seq, timestamp=ts, ssrc=self.ssrc,
                               padding=self.padding > 0, ext_words=ext_words)
        plaintext = (self.ext_body or b"") + opus_frame
        if self.padding:
            plaintext += b"\x00" * (self.padding - 1) + bytes([self.padding])
        self.counter = (self.counter + 1) & 0xFFFFFFFF
        return self.cipher.seal(aad, plaintext, self.counter)

    def talk(self, pcm: np.ndarray, at: float) -> list[SentPacket]:
        """Packets for speech starting at wall time `at`; the RTP clock runs in real time,
        so a pause between two `talk` calls shows as a timestamp jump with no sequence gap."""
        if self.epoch is None:
            self.epoch = at
        out = []
        for i, frame in enumerate(self.encode(pcm)):
            send = at + i * FRAME / SAMPLE_RATE
            ts = (self.ts0 + round((send - self.epoch) * SAMPLE_RATE)) & 0xFFFFFFFF
            seq = self.seq
            out.append(SentPacket(seq, ts, send, self.seal(frame, seq, ts)))
            self.seq = (self.seq + 1) & 0xFFFF
            self.frames_sent += 1
        return out
