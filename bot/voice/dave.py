"""DAVE (end-to-end) decryption of received Opus frames, with passthrough during transitions.

discord.py 2.7 keeps the connection's `davey.DaveSession` at `VoiceConnectionState.dave_session`
(voice_state.py) and replaces/re-initialises it on protocol transitions
(`reinit_dave_session`, `_execute_transition`), so we never hold the session object: we ask a
getter for the current one on every frame.

A DAVE-encrypted frame ends with a supplemental-data trailer whose last two bytes are the magic
marker 0xFAFA, preceded by one byte giving the trailer's total size (tag 8 B + ULEB128 nonce +
unencrypted ranges + size byte + marker). Frames without that trailer are plain Opus: they occur
while a call moves between protocol versions (and when DAVE is off), and we pass them through.
Marked frames go to `session.decrypt(user_id, MediaType.audio, frame)`; davey raises ValueError
(e.g. "NoDecryptorForUser" before the MLS group includes that sender) and the frame is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MARKER = b"\xfa\xfa"
MIN_TRAILER = 8 + 1 + 1 + 2  # truncated tag, >=1-byte nonce, size byte, marker


def has_dave_trailer(frame: bytes) -> bool:
    """True when the frame ends in a plausible DAVE trailer (marker + sane size byte)."""
    if len(frame) < MIN_TRAILER or frame[-2:] != MARKER:
        return False
    size = frame[-3]
    return MIN_TRAILER <= size <= len(frame)


@dataclass
class DaveStats:
    decrypted: int = 0
    passthrough: int = 0
    no_session: int = 0
    failed: int = 0


def _audio_media_type() -> Any:
    try:
        import davey
    except ImportError:  # only reachable if the bot extra is not installed
        return 0
    return davey.MediaType.audio


class DaveDecryptor:
    """Turn a transport-decrypted frame into plain Opus, or None to drop it (counted)."""

    def __init__(self, session_getter: Callable[[], Any]) -> None:
        self._get_session = session_getter
        self._media = _audio_media_type()
        self.stats = DaveStats()

    def decrypt(self, user_id: int, frame: bytes) -> bytes | None:
        """Plain Opus for `user_id`'s frame; None when it cannot be decrypted (yet)."""
        if not has_dave_trailer(frame):
            self.stats.passthrough += 1
            return frame
        session = self._get_session()
        if session is None:
            self.stats.no_session += 1
            return None
        try:
            out = session.decrypt(int(user_id), self._media, bytes(frame))
        except (ValueError, RuntimeError) as exc:
            self.stats.failed += 1
            if self.stats.failed <= 5 or self.stats.failed % 500 == 0:
                log.info("DAVE could not decrypt a frame from %s: %s (%d so far)",
                         user_id, exc, self.stats.failed)
            return None
        self.stats.decrypted += 1
        return bytes(out)
