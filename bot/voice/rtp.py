"""RTP header parsing for Discord voice (RFC 3550 with Discord's `_rtpsize` AEAD layout).

Layout of one `_rtpsize` datagram, as discord.py 2.7 builds it for sending
(`VoiceClient._get_voice_packet` + `_encrypt_aead_xchacha20_poly1305_rtpsize`) and as Discord
sends it to us::

    | 12-byte header | CSRCs (4*CC) | ext header 4 B (if X) | ciphertext + 16 B tag | 4 B nonce |
    '----------------- additional authenticated data ------'
                                    plaintext = | ext body (4*words) | media | padding (if P) |

So the extension *header* (0xBEDE + length in 32-bit words) is clear text and authenticated, the
extension *body* is encrypted and has to be stripped after decryption, and RTP padding (P bit)
sits at the end of the plaintext. Padding must be stripped before DAVE looks at the frame: DAVE
frames end in the 0xFAFA marker, and padding left in place hides it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
HEADER_LEN = 12
OPUS_PAYLOAD_TYPE = 0x78  # 120: what discord.py 2.7 sends (header[1] = 0x78) and Discord relays
BEDE_PROFILE = 0xBEDE  # RFC 8285 one-byte header extension profile
_HEADER = struct.Struct(">BBHII")
_EXT = struct.Struct(">HH")


class RtpError(ValueError):
    """The datagram is not a usable RTP packet (malformed, wrong version, bad padding)."""


def is_rtcp(data: bytes) -> bool:
    """RTCP shares the socket; its packet types 200-204 sit where RTP's M+PT byte is (RFC 5761)."""
    return len(data) >= 2 and 200 <= data[1] <= 204


@dataclass(slots=True)
class RtpHeader:
    """The clear-text part of a packet. `aad_len` bytes of the datagram are authenticated."""

    padding: bool
    extension: bool
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    csrcs: tuple[int, ...]
    ext_profile: int
    ext_words: int
    aad_len: int


def parse_header(data: bytes) -> RtpHeader:
    """Parse the clear-text header (fixed part, CSRCs, extension preamble); raise RtpError."""
    if len(data) < HEADER_LEN:
        raise RtpError(f"datagram of {len(data)} bytes is shorter than an RTP header")
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
    version = b0 >> 6
    if version != RTP_VERSION:
        raise RtpError(f"RTP version {version}, expected 2")
    cc = b0 & 0x0F
    offset = HEADER_LEN + 4 * cc
    if len(data) < offset:
        raise RtpError(f"datagram too short for {cc} CSRCs")
    csrcs = struct.unpack_from(f">{cc}I", data, HEADER_LEN) if cc else ()
    extension = bool(b0 & 0x10)
    profile = words = 0
    if extension:
        if len(data) < offset + 4:
            raise RtpError("datagram too short for its header extension preamble")
        profile, words = _EXT.unpack_from(data, offset)
        offset += 4
    return RtpHeader(
        padding=bool(b0 & 0x20), extension=extension, marker=bool(b1 & 0x80),
        payload_type=b1 & 0x7F, sequence=seq, timestamp=ts, ssrc=ssrc, csrcs=tuple(csrcs),
        ext_profile=profile, ext_words=words, aad_len=offset,
    )


def split_plaintext(header: RtpHeader, plaintext: bytes) -> tuple[bytes, bytes]:
    """Split a decrypted `_rtpsize` payload into (extension body, media) with padding removed.

    Order matters: the extension body is at the front, the padding (whose last byte counts it,
    RFC 3550 5.1) at the back; the media frame is what lies between.
    """
    ext_len = 4 * header.ext_words if header.extension else 0
    if len(plaintext) < ext_len:
        raise RtpError(f"payload of {len(plaintext)} bytes is shorter than its {ext_len}-byte "
                       "extension body")
    end = len(plaintext)
    if header.padding:
        if end == ext_len:
            raise RtpError("P bit set but no room for padding")
        pad = plaintext[-1]
        if pad == 0 or pad > end - ext_len:
            raise RtpError(f"padding count {pad} is impossible for a {end - ext_len}-byte payload")
        end -= pad
    return bytes(plaintext[:ext_len]), bytes(plaintext[ext_len:end])


def parse_one_byte_extensions(body: bytes) -> dict[int, bytes]:
    """Elements of an RFC 8285 one-byte (0xBEDE) extension body: {id: value}.

    Discord puts e.g. audio level / speaking data here; we do not need the values to record, but
    parsing them proves the body was located correctly (tests) and keeps them at hand.
    """
    out: dict[int, bytes] = {}
    i = 0
    while i < len(body):
        b = body[i]
        if b == 0:  # padding byte between elements
            i += 1
            continue
        ident, length = b >> 4, (b & 0x0F) + 1
        if ident == 15:  # reserved: stop parsing (RFC 8285 4.2)
            break
        if i + 1 + length > len(body):
            raise RtpError(f"extension element {ident} overruns the extension body")
        out[ident] = bytes(body[i + 1:i + 1 + length])
        i += 1 + length
    return out


def build_one_byte_extensions(elements: dict[int, bytes]) -> bytes:
    """Encode {id: value} as a 0xBEDE body padded to 32-bit words (for the simulated client)."""
    body = bytearray()
    for ident, value in elements.items():
        if not 1 <= ident <= 14 or not 1 <= len(value) <= 16:
            raise ValueError("one-byte extension ids are 1-14 and values 1-16 bytes")
        body.append((ident << 4) | (len(value) - 1))
        body += value
    while len(body) % 4:
        body.append(0)
    return bytes(body)


def build_header(*, sequence: int, timestamp: int, ssrc: int, payload_type: int = OPUS_PAYLOAD_TYPE,
                 marker: bool = False, padding: bool = False, csrcs: tuple[int, ...] = (),
                 ext_words: int | None = None) -> bytes:
    """The clear-text header bytes (AAD) of a packet; `ext_words` adds a 0xBEDE preamble."""
    b0 = (RTP_VERSION << 6) | (0x20 if padding else 0) | (0x10 if ext_words is not None else 0)
    b0 |= len(csrcs)
    b1 = (0x80 if marker else 0) | (payload_type & 0x7F)
    out = bytearray(_HEADER.pack(b0, b1, sequence & 0xFFFF, timestamp & 0xFFFFFFFF,
                                 ssrc & 0xFFFFFFFF))
    for c in csrcs:
        out += struct.pack(">I", c)
    if ext_words is not None:
        out += _EXT.pack(BEDE_PROFILE, ext_words)
    return bytes(out)
