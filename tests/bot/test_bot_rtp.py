"""RTP parsing and transport AEAD: real headers, real PyNaCl / AES-GCM sealing."""

from __future__ import annotations

import struct

import pytest

from bot.voice import rtp
from bot.voice.transport import (
    AES_GCM,
    XCHACHA,
    DecryptError,
    TransportCipher,
    supported_modes,
)

KEY = bytes(range(1, 33))
MODES = [XCHACHA, AES_GCM]


def _sealed(cipher: TransportCipher, *, media: bytes, padding: int = 0,
            ext: dict[int, bytes] | None = None, csrcs: tuple[int, ...] = ()) -> bytes:
    body = rtp.build_one_byte_extensions(ext) if ext else b""
    aad = rtp.build_header(sequence=7, timestamp=123456, ssrc=0xCAFE, padding=padding > 0,
                           csrcs=csrcs, ext_words=len(body) // 4 if ext else None)
    plain = body + media + (b"\x00" * (padding - 1) + bytes([padding]) if padding else b"")
    return cipher.seal(aad, plain, counter=41)


def test_both_modes_are_available_here() -> None:
    # If this fails, AES-GCM needs `cryptography` (or a libsodium with hardware AES).
    assert set(MODES) <= set(supported_modes())


def test_header_fields_and_csrcs() -> None:
    data = rtp.build_header(sequence=65535, timestamp=0xFFFFFFFF, ssrc=42, marker=True,
                            csrcs=(1, 2)) + b"payload"
    h = rtp.parse_header(data)
    assert (h.sequence, h.timestamp, h.ssrc, h.marker) == (65535, 0xFFFFFFFF, 42, True)
    assert h.csrcs == (1, 2)
    assert h.payload_type == rtp.OPUS_PAYLOAD_TYPE
    assert h.aad_len == 12 + 8
    assert not h.extension


def test_version_and_length_are_checked() -> None:
    good = rtp.build_header(sequence=1, timestamp=2, ssrc=3)
    with pytest.raises(rtp.RtpError):
        rtp.parse_header(bytes([good[0] & 0x3F]) + good[1:])  # version 0
    with pytest.raises(rtp.RtpError):
        rtp.parse_header(good[:11])
    with pytest.raises(rtp.RtpError):  # X bit set but no room for the preamble
        rtp.parse_header(bytes([good[0] | 0x10]) + good[1:])


def test_rtcp_is_recognised_by_packet_type() -> None:
    for pt in range(200, 205):
        assert rtp.is_rtcp(bytes([0x81, pt, 0, 6]) + b"\x00" * 24)
    assert not rtp.is_rtcp(rtp.build_header(sequence=1, timestamp=2, ssrc=3))
    # A marker bit on Opus (0x80 | 0x78 = 0xF8) is not RTCP.
    assert not rtp.is_rtcp(rtp.build_header(sequence=1, timestamp=2, ssrc=3, marker=True))


def test_one_byte_extension_roundtrip() -> None:
    elements = {1: b"\x85", 3: b"\x01\x02\x03"}
    body = rtp.build_one_byte_extensions(elements)
    assert len(body) % 4 == 0
    assert rtp.parse_one_byte_extensions(body) == elements
    with pytest.raises(rtp.RtpError):
        rtp.parse_one_byte_extensions(b"\x13\x01")  # says 4 bytes, has 1


@pytest.mark.parametrize("mode", MODES)
def test_open_strips_extension_body_and_padding(mode: str) -> None:
    cipher = TransportCipher(mode, KEY)
    # The media ends in DAVE's marker: padding left in place would hide it.
    media = b"opus-frame-bytes\x0c\xfa\xfa"
    data = _sealed(cipher, media=media, padding=7, ext={1: b"\x90", 2: b"ab"}, csrcs=(9,))
    h = rtp.parse_header(data)
    assert h.extension and h.ext_profile == rtp.BEDE_PROFILE and h.ext_words == 2
    assert h.padding
    # The extension preamble is authenticated clear text; the body is not visible in clear.
    assert data[h.aad_len - 4:h.aad_len] == b"\xbe\xde\x00\x02"
    assert b"ab" not in data[h.aad_len:]
    ext, out = rtp.split_plaintext(h, cipher.open(data, h))
    assert out == media
    assert out.endswith(b"\xfa\xfa")
    assert rtp.parse_one_byte_extensions(ext) == {1: b"\x90", 2: b"ab"}
    # The trailing 4 bytes are the big-endian nonce counter (discord.py 2.7 layout).
    assert struct.unpack(">I", data[-4:])[0] == 41


@pytest.mark.parametrize("mode", MODES)
def test_tampering_anywhere_is_detected(mode: str) -> None:
    cipher = TransportCipher(mode, KEY)
    data = _sealed(cipher, media=b"x" * 40, ext={1: b"\x01"})
    h = rtp.parse_header(data)
    for i in (2, h.aad_len - 1, h.aad_len + 3, len(data) - 6, len(data) - 1):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises(DecryptError):
            cipher.open(bytes(bad), rtp.parse_header(bytes(bad)))
    other = TransportCipher(mode, bytes(32))
    with pytest.raises(DecryptError):
        other.open(data, h)
    with pytest.raises(DecryptError):
        cipher.open(data[:h.aad_len + 10], h)


def test_bad_padding_counts_are_rejected() -> None:
    h = rtp.parse_header(rtp.build_header(sequence=1, timestamp=1, ssrc=1, padding=True))
    with pytest.raises(rtp.RtpError):
        rtp.split_plaintext(h, b"abc\x00")
    with pytest.raises(rtp.RtpError):
        rtp.split_plaintext(h, b"abc\x09")
    assert rtp.split_plaintext(h, b"abc\x01") == (b"", b"abc")


def test_cipher_rejects_wrong_key_length_and_unknown_mode() -> None:
    with pytest.raises(ValueError):
        TransportCipher(XCHACHA, b"short")
    with pytest.raises(ValueError):
        TransportCipher("xsalsa20_poly1305", KEY)
