"""Per-speaker clip recorder: the receiver's sink, the spool's producer.

A clip opens on a speaker's first voiced frame and is streamed straight to the spool's tmp/ file.
It is cut when the speaker has been silent for `silence_cut` seconds (default 1.5; silence is
either quiet frames or no packets at all: Discord clients stop sending when you stop talking) or
when it reaches `max_clip` seconds (default 60). Samples are placed by their absolute time, so a
pause shorter than the cut becomes real silence in the clip and the clip's `started-at` (UTC, ms)
is the time of its first sample: clips of different speakers line up on one timeline.

Trailing silence is held in memory (at most `silence_cut` seconds) and written only if the speaker
resumes, so clips do not end in 1.5 s of nothing. Bots (including ourselves) are never recorded,
and a consent hook decides per user id; the receiver asks `wants()` before decrypting anything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bot.clipwriter import CONTENT_TYPES, ClipWriter, open_writer
from bot.spool import Spool, SpoolEntry
from homelabpi.keys import ClipKey, new_id, validate_id

log = logging.getLogger(__name__)
SAMPLE_RATE = 48_000


@dataclass(frozen=True)
class Member:
    """What the recorder needs to know about a voice channel member."""

    user_id: int
    display_name: str
    bot: bool = False


def iso_ms(ts: float) -> str:
    """UTC epoch seconds as ISO 8601 with milliseconds, e.g. 2026-11-24T12:41:00.120Z."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass
class RecorderStats:
    clips: int = 0
    clips_too_short: int = 0
    cut_silence: int = 0
    cut_max: int = 0
    refused_users: int = 0
    overlap_samples: int = 0


class _Clip:
    def __init__(self, writer: ClipWriter, path: Path, start: float, key: str) -> None:
        self.writer = writer
        self.path = path
        self.start = start  # absolute time of sample 0
        self.key = key
        self.written = 0  # samples on disk
        self.pending: list[np.ndarray] = []  # trailing quiet frames, not yet on disk
        self.pending_len = 0
        self.voiced = 0  # voiced samples
        self.last_voice_end = start  # absolute time where the last voiced frame ended

    @property
    def end_pos(self) -> int:
        return self.written + self.pending_len


class Recorder:
    """Cuts each speaker's audio into clips and commits them to the spool."""

    def __init__(
        self,
        spool: Spool,
        *,
        guild_id: int | str,
        channel_id: int | str,
        channel_name: str,
        self_user_id: int,
        member_info: Callable[[int], Member | None],
        consent: Callable[[int], bool] = lambda user_id: True,
        session_id: str | None = None,
        fmt: str = "ogg",
        silence_cut: float = 1.5,
        max_clip: float = 60.0,
        min_voiced: float = 0.2,
        threshold_dbfs: float = -50.0,
        on_clip: Callable[[SpoolEntry], None] | None = None,
        wants_ttl: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self.guild = validate_id(str(guild_id), "guild")
        self.channel_id = str(channel_id)
        self.channel_name = channel_name
        self.self_user_id = int(self_user_id)
        self.member_info = member_info
        self.consent = consent
        self.session = validate_id(session_id or new_id("s"), "session")
        if fmt not in CONTENT_TYPES:
            raise ValueError(f"clip format {fmt!r} is not one of {sorted(CONTENT_TYPES)}")
        self.fmt = fmt
        self.silence_cut = silence_cut
        self.max_samples = int(max_clip * SAMPLE_RATE)
        self.min_voiced = int(min_voiced * SAMPLE_RATE)
        self.threshold = 32768.0 * 10 ** (threshold_dbfs / 20)
        self.on_clip = on_clip
        self.wants_ttl = wants_ttl
        self.clock = clock
        self.stats = RecorderStats()
        self._clips: dict[int, _Clip] = {}
        self._wants_cache: dict[int, tuple[float, bool]] = {}
        self._lock = threading.RLock()

    # -- policy --------------------------------------------------------------------------------
    def wants(self, user_id: int) -> bool:
        """May this user be recorded? Never bots or ourselves; else the consent hook (cached)."""
        now = self.clock()
        hit = self._wants_cache.get(user_id)
        if hit is not None and now - hit[0] < self.wants_ttl:
            return hit[1]
        ok = False
        if int(user_id) != self.self_user_id:
            member = self.member_info(int(user_id))
            if member is not None and not member.bot:
                try:
                    ok = bool(self.consent(int(user_id)))
                except Exception:  # noqa: BLE001 - a broken consent hook means "no"
                    log.exception("consent hook failed for %s; not recording", user_id)
                    ok = False
        if not ok:
            self.stats.refused_users += 1
        self._wants_cache[user_id] = (now, ok)
        return ok

    # -- AudioSink -----------------------------------------------------------------------------
    def write(self, user_id: int, pcm: np.ndarray, start: float) -> None:
        """One decoded frame of `user_id`'s audio whose first sample is at `start`."""
        with self._lock:
            if not self.wants(user_id):
                self._close(user_id, "refused")
                return
            pcm = np.asarray(pcm, dtype=np.int16)
            voiced = self._is_voiced(pcm)
            clip = self._clips.get(user_id)
            end = start + pcm.shape[0] / SAMPLE_RATE
            if clip is not None and start - clip.last_voice_end >= self.silence_cut:
                self._close(user_id, "silence")
                clip = None
            if not voiced:
                if clip is not None:
                    self._place(clip, pcm, start, hold=True)
                    if end - clip.last_voice_end >= self.silence_cut:
                        self._close(user_id, "silence")
                return
            if clip is not None:
                pos = round((start - clip.start) * SAMPLE_RATE)
                if pos + pcm.shape[0] > self.max_samples:
                    self._close(user_id, "max")
                    clip = None
            if clip is None:
                clip = self._open(user_id, start)
                if clip is None:
                    return
            self._place(clip, pcm, start, hold=False)
            clip.voiced += pcm.shape[0]
            clip.last_voice_end = max(clip.last_voice_end, end)

    def end(self, user_id: int) -> None:
        """The user's stream ended: close their clip."""
        with self._lock:
            self._close(user_id, "end")

    def tick(self, now: float, slack: float = 0.5) -> None:
        """Close clips whose speaker has sent nothing voiced for `silence_cut` (+ jitter slack)."""
        with self._lock:
            for user_id, clip in list(self._clips.items()):
                if now - clip.last_voice_end >= self.silence_cut + slack:
                    self._close(user_id, "silence")

    def close(self) -> None:
        """Close every open clip (leaving the channel, shutting down)."""
        with self._lock:
            for user_id in list(self._clips):
                self._close(user_id, "end")

    def reconsider(self, user_id: int | None = None) -> None:
        """Forget cached `wants` decisions (one user, or all): a consent change applies now."""
        with self._lock:
            if user_id is None:
                self._wants_cache.clear()
            else:
                self._wants_cache.pop(int(user_id), None)

    def discard(self, user_id: int) -> bool:
        """Drop the user's clip in progress without committing it (consent withdrawn, /forget)."""
        with self._lock:
            had = int(user_id) in self._clips
            self._close(int(user_id), "refused")
            return had

    def open_clip_ids(self) -> set[str]:
        with self._lock:
            return {c.path.name.rsplit(".", 1)[0] for c in self._clips.values()}

    # -- internals -----------------------------------------------------------------------------
    def _is_voiced(self, pcm: np.ndarray) -> bool:
        if pcm.size == 0:
            return False
        rms = float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2)))
        return rms >= self.threshold

    def _open(self, user_id: int, start: float) -> _Clip | None:
        member = self.member_info(user_id)
        if member is None:
            return None
        when = datetime.fromtimestamp(start, tz=UTC)
        clip_id = new_id("c", when)
        key = ClipKey(self.guild, self.session, clip_id).audio(self.fmt)
        metadata = {
            "guild": self.guild, "channel": self.channel_name, "channel-id": self.channel_id,
            "session": self.session, "speaker": member.display_name,
            "speaker-id": str(user_id), "started-at": iso_ms(start), "source": "discord",
        }
        path = self.spool.begin(clip_id, self.fmt, key, metadata, CONTENT_TYPES[self.fmt])
        clip = _Clip(open_writer(path, self.fmt), path, start, key)
        self._clips[user_id] = clip
        log.debug("recording %s for %s from %s", key, user_id, metadata["started-at"])
        return clip

    def _place(self, clip: _Clip, pcm: np.ndarray, start: float, *, hold: bool) -> None:
        """Put `pcm` at its absolute position: zero-fill gaps, trim overlap, hold trailing quiet."""
        pos = round((start - clip.start) * SAMPLE_RATE)
        gap = pos - clip.end_pos
        if gap < 0:  # overlaps what we have (re-anchor, reordering at a cut): keep the earlier
            self.stats.overlap_samples += min(-gap, pcm.shape[0])
            pcm = pcm[-gap:]
            if pcm.size == 0:
                return
            gap = 0
        pieces = ([np.zeros(gap, dtype=np.int16)] if gap > 0 else []) + [pcm]
        if hold:
            clip.pending.extend(pieces)
            clip.pending_len += sum(p.shape[0] for p in pieces)
            return
        for p in clip.pending:
            clip.writer.write(p)
        clip.written += clip.pending_len
        clip.pending, clip.pending_len = [], 0
        for p in pieces:
            clip.writer.write(p)
            clip.written += p.shape[0]

    def _close(self, user_id: int, why: str) -> None:
        clip = self._clips.pop(user_id, None)
        if clip is None:
            return
        try:
            clip.writer.close()
        except Exception:  # noqa: BLE001 - keep recording others; the salvage path remains
            log.exception("closing clip %s failed", clip.key)
            return
        if why == "refused":  # consent withdrawn mid-clip: keep nothing of the open clip
            self.spool.abandon(clip.path)
            return
        if clip.voiced < self.min_voiced:
            self.stats.clips_too_short += 1
            self.spool.abandon(clip.path)
            return
        if why == "silence":
            self.stats.cut_silence += 1
        elif why == "max":
            self.stats.cut_max += 1
        entry = self.spool.commit(clip.path)
        self.stats.clips += 1
        if self.on_clip is not None:
            self.on_clip(entry)
