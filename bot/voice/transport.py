"""Transport (hop-by-hop) decryption of Discord voice packets: the two `_rtpsize` AEAD modes.

Facts pinned against discord.py 2.7.1 `voice_client.py::_encrypt_aead_xchacha20_poly1305_rtpsize`
(the sending side of the same mode) and Discord's voice docs:

* AAD is the clear-text header: 12 fixed bytes, CSRCs, and the 4-byte extension preamble
  (`rtp.RtpHeader.aad_len`).
* The last 4 bytes of the datagram are a big-endian 32-bit counter; the AEAD nonce is that counter
  followed by zeros: 24 bytes for XChaCha20-Poly1305, 12 bytes for AES-256-GCM.
* Between AAD and the counter: ciphertext with the 16-byte tag appended.

Legacy `xsalsa20_poly1305*` modes were removed by Discord in November 2024 and are not handled.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from nacl import bindings as sodium

from bot.voice.rtp import RtpHeader

XCHACHA = "aead_xchacha20_poly1305_rtpsize"
AES_GCM = "aead_aes256_gcm_rtpsize"
NONCE_SUFFIX = 4
TAG_LEN = 16
KEY_LEN = 32


class DecryptError(ValueError):
    """Authentication failed or the packet is too short: drop this one packet, keep the stream."""


def _aes_backend() -> tuple[Callable[[bytes, bytes, bytes, bytes], bytes],
                             Callable[[bytes, bytes, bytes, bytes], bytes]] | None:
    """(encrypt, decrypt)(key, nonce, data, aad) for AES-256-GCM, or None when unavailable.

    `cryptography` (OpenSSL) works on every CPU; libsodium's AES-GCM needs hardware AES, which a
    Raspberry Pi 4 lacks, so it is only the fallback.
    """
    try:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        pass
    else:
        def enc(key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
            return AESGCM(key).encrypt(nonce, data, aad)

        def dec(key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
            try:
                return AESGCM(key).decrypt(nonce, data, aad)
            except InvalidTag as exc:
                raise DecryptError("AES-GCM authentication failed") from exc

        return enc, dec
    fn = getattr(sodium, "crypto_aead_aes256gcm_decrypt", None)
    available = getattr(sodium, "crypto_aead_aes256gcm_is_available", lambda: fn is not None)
    if fn is None or not available():
        return None

    def enc_s(key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        return sodium.crypto_aead_aes256gcm_encrypt(data, aad, nonce, key)

    def dec_s(key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        try:
            return sodium.crypto_aead_aes256gcm_decrypt(data, aad, nonce, key)
        except Exception as exc:  # nacl.exceptions.CryptoError
            raise DecryptError("AES-GCM authentication failed") from exc

    return enc_s, dec_s


_AES = _aes_backend()


def supported_modes() -> tuple[str, ...]:
    """Modes this process can decrypt, in Discord's order of preference."""
    return (AES_GCM, XCHACHA) if _AES is not None else (XCHACHA,)


class TransportCipher:
    """A voice connection's transport cipher: `open` received packets, `seal` for the sim client."""

    def __init__(self, mode: str, secret_key: bytes | list[int]) -> None:
        key = bytes(secret_key)
        if len(key) != KEY_LEN:
            raise ValueError(f"voice secret key is {len(key)} bytes, expected {KEY_LEN}")
        if mode not in supported_modes():
            raise ValueError(f"transport mode {mode!r} is not supported here "
                             f"(supported: {', '.join(supported_modes())})")
        self.mode = mode
        self.key = key
        self._nonce_len = 24 if mode == XCHACHA else 12

    def _nonce(self, suffix: bytes) -> bytes:
        return bytes(suffix) + b"\x00" * (self._nonce_len - NONCE_SUFFIX)

    def open(self, data: bytes, header: RtpHeader) -> bytes:
        """Decrypt and authenticate one datagram; return the plaintext (ext body+media+padding)."""
        if len(data) < header.aad_len + TAG_LEN + NONCE_SUFFIX:
            raise DecryptError(f"packet of {len(data)} bytes cannot hold a tag and nonce")
        aad = bytes(data[:header.aad_len])
        sealed = bytes(data[header.aad_len:-NONCE_SUFFIX])
        nonce = self._nonce(data[-NONCE_SUFFIX:])
        if self.mode == XCHACHA:
            try:
                return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, aad, nonce,
                                                                         self.key)
            except Exception as exc:  # nacl.exceptions.CryptoError
                raise DecryptError("XChaCha20-Poly1305 authentication failed") from exc
        assert _AES is not None
        return _AES[1](self.key, nonce, sealed, aad)

    def seal(self, aad: bytes, plaintext: bytes, counter: int) -> bytes:
        """Build a datagram the way a Discord client does: AAD + ciphertext+tag + counter."""
        suffix = struct.pack(">I", counter & 0xFFFFFFFF)
        nonce = self._nonce(suffix)
        if self.mode == XCHACHA:
            sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, nonce,
                                                                       self.key)
        else:
            assert _AES is not None
            sealed = _AES[0](self.key, nonce, plaintext, aad)
        return aad + sealed + suffix
