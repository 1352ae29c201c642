"""The receive pipeline's glue: datagram in, per-speaker PCM with absolute time out.

Everything a packet can do wrong is caught per packet and counted, so one bad datagram costs one
20 ms frame (concealed) and never the stream. Packets from an SSRC we cannot name yet (Discord
sends the SPEAKING event that maps SSRC -> user over the websocket, which can lose the race with
the first UDP packets) wait in a small, bounded hold queue and are replayed once the mapping
arrives, or dropped and counted after `hold_timeout` seconds.

Time: each stream is anchored at its first packet's arrival (wall clock, UTC epoch seconds) and
advanced by RTP timestamp deltas at 48 kHz, which is exact between packets and independent of
network jitter. If the two clocks disagree by more than `reanchor_after` seconds (a sender whose
timestamps do not advance while it is silent, or a new random base) the stream re-anchors.

Threading: discord.py calls `feed` on its socket-reader thread and the SPEAKING hook on the event
loop; one lock serialises them. The sink is called with that lock held.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from bot.voice import rtp
from bot.voice.dave import DaveDecryptor
from bot.voice.decoder import SAMPLE_RATE, OpusStream
from bot.voice.jitter import Frame, JitterBuffer
from bot.voice.transport import DecryptError, TransportCipher

log = logging.getLogger(__name__)


class AudioSink(Protocol):
    """Where decoded audio goes (the recorder)."""

    def write(self, user_id: int, pcm: np.ndarray, start: float) -> None:
        """Mono s16 48 kHz samples whose first sample was spoken at `start` (UTC epoch s)."""

    def end(self, user_id: int) -> None:
        """The user's stream ended (left, or SSRC reassigned): close what is open."""


@dataclass
class ReceiveStats:
    """Counters for /status. Monotonic over the receiver's life."""

    packets: int = 0
    bytes: int = 0
    rtcp: int = 0
    malformed: int = 0
    other_payload: int = 0
    no_key: int = 0
    decrypt_errors: int = 0
    dave_errors: int = 0
    dave_passthrough: int = 0
    decode_errors: int = 0
    unknown_ssrc_held: int = 0
    unknown_ssrc_dropped: int = 0
    ignored: int = 0
    lost: int = 0
    late: int = 0
    duplicate: int = 0
    concealed: int = 0
    fec_recovered: int = 0
    frames: int = 0
    reanchors: int = 0
    internal_errors: int = 0
    streams: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Stream:
    ssrc: int
    user_id: int
    jitter: JitterBuffer
    decoder: OpusStream
    anchor_wall: float | None = None
    anchor_ts: int = 0
    last_arrival: float = 0.0
    counted: dict[str, int] = field(default_factory=dict)

    def time_of(self, ts: int) -> float:
        assert self.anchor_wall is not None
        return self.anchor_wall + (ts - self.anchor_ts) / SAMPLE_RATE


class VoiceReceiver:
    """Feed it datagrams and SPEAKING events; it feeds the sink per-speaker audio."""

    def __init__(
        self,
        sink: AudioSink,
        *,
        cipher: TransportCipher | None = None,
        dave_session: Callable[[], Any] = lambda: None,
        wants: Callable[[int], bool] = lambda user_id: True,
        jitter_depth: int = 3,
        jitter_max_wait: float = 0.12,
        hold_timeout: float = 2.0,
        hold_per_ssrc: int = 100,
        hold_max_ssrcs: int = 16,
        reanchor_after: float = 0.3,
        idle_stream_timeout: float = 300.0,
    ) -> None:
        self.sink = sink
        self.cipher = cipher
        self.dave = DaveDecryptor(dave_session)
        self.wants = wants
        self.jitter_depth = jitter_depth
        self.jitter_max_wait = jitter_max_wait
        self.hold_timeout = hold_timeout
        self.hold_per_ssrc = hold_per_ssrc
        self.hold_max_ssrcs = hold_max_ssrcs
        self.reanchor_after = reanchor_after
        self.idle_stream_timeout = idle_stream_timeout
        self.stats = ReceiveStats()
        self.ignore_ssrcs: set[int] = set()
        self._users: dict[int, int] = {}  # ssrc -> user id
        self._streams: dict[int, _Stream] = {}
        self._held: dict[int, deque[tuple[float, bytes]]] = {}
        self._lock = threading.RLock()

    # -- control plane (voice websocket) -------------------------------------------------------
    def set_cipher(self, cipher: TransportCipher | None) -> None:
        """New transport key (SESSION_DESCRIPTION, op 4); takes effect for the next packet."""
        with self._lock:
            self.cipher = cipher

    def map_ssrc(self, ssrc: int, user_id: int, now: float | None = None) -> None:
        """SPEAKING (op 5) told us who sends on `ssrc`: remember it and replay held packets."""
        with self._lock:
            old = self._users.get(ssrc)
            if old is not None and old != user_id:
                self._end_stream(ssrc)
            self._users[ssrc] = user_id
            held = self._held.pop(ssrc, None)
            if held:
                for arrival, data in held:
                    self._feed_locked(data, arrival)

    def forget_user(self, user_id: int) -> None:
        """CLIENT_DISCONNECT (op 13): close that user's streams and drop their mappings."""
        with self._lock:
            for ssrc in [s for s, u in self._users.items() if u == user_id]:
                self._end_stream(ssrc)
                del self._users[ssrc]

    def user_for(self, ssrc: int) -> int | None:
        with self._lock:
            return self._users.get(ssrc)

    # -- data plane (UDP) ----------------------------------------------------------------------
    def feed(self, data: bytes, arrival: float) -> None:
        """One datagram, received at `arrival` (UTC epoch seconds). Never raises."""
        with self._lock:
            self._feed_locked(data, arrival)

    def tick(self, now: float) -> None:
        """Periodic (~10 Hz): release jitter buffers of quiet speakers, expire held packets."""
        with self._lock:
            try:
                for ssrc in list(self._held):
                    q = self._held[ssrc]
                    while q and q[0][0] < now - self.hold_timeout:
                        q.popleft()
                        self.stats.unknown_ssrc_dropped += 1
                    if not q:
                        del self._held[ssrc]
                for ssrc, stream in list(self._streams.items()):
                    self._emit(stream, stream.jitter.flush(now, self.jitter_max_wait))
                    if now - stream.last_arrival > self.idle_stream_timeout:
                        # Quiet for minutes (and no op 13 seen): free the decoder state. The
                        # SSRC mapping stays, so a returning speaker gets a fresh stream.
                        self._end_stream(ssrc)
            except Exception:  # noqa: BLE001 - the timer must survive anything
                self.stats.internal_errors += 1
                log.exception("voice receive tick failed")

    def close(self) -> None:
        """Drain every stream into the sink and end it."""
        with self._lock:
            for ssrc in list(self._streams):
                self._end_stream(ssrc)

    def snapshot(self) -> dict[str, int]:
        """Counters for /status (a copy, safe to serialise)."""
        with self._lock:
            out = self.stats.as_dict()
            out["dave_passthrough"] = self.dave.stats.passthrough
            out["held_now"] = sum(len(q) for q in self._held.values())
            out["active_streams"] = len(self._streams)
            return out

    # -- internals -----------------------------------------------------------------------------
    def _feed_locked(self, data: bytes, arrival: float) -> None:
        st = self.stats
        try:
            if rtp.is_rtcp(data):
                st.rtcp += 1
                return
            st.packets += 1
            st.bytes += len(data)
            try:
                header = rtp.parse_header(data)
            except rtp.RtpError:
                st.malformed += 1
                return
            if header.ssrc in self.ignore_ssrcs:
                st.ignored += 1
                return
            if header.payload_type != rtp.OPUS_PAYLOAD_TYPE:
                st.other_payload += 1  # video, or something newer than us
                return
            user_id = self._users.get(header.ssrc)
            if user_id is None:
                self._hold(header.ssrc, data, arrival)
                return
            if not self.wants(user_id):
                st.ignored += 1
                return
            if self.cipher is None:
                st.no_key += 1
                return
            try:
                plaintext = self.cipher.open(data, header)
            except DecryptError:
                st.decrypt_errors += 1
                return
            try:
                _ext, media = rtp.split_plaintext(header, plaintext)
            except rtp.RtpError:
                st.malformed += 1
                return
            opus = self.dave.decrypt(user_id, media)
            if opus is None:
                st.dave_errors += 1
                return
            stream = self._stream(header.ssrc, user_id)
            self._push(stream, header, opus, arrival)
        except Exception:  # noqa: BLE001 - isolation: one packet never stops the stream
            st.internal_errors += 1
            if st.internal_errors <= 5 or st.internal_errors % 1000 == 0:
                log.exception("unexpected error handling a voice packet (%d so far)",
                              st.internal_errors)

    def _hold(self, ssrc: int, data: bytes, arrival: float) -> None:
        q = self._held.get(ssrc)
        if q is None:
            if len(self._held) >= self.hold_max_ssrcs:
                self.stats.unknown_ssrc_dropped += 1
                return
            q = self._held[ssrc] = deque()
        if len(q) >= self.hold_per_ssrc:
            q.popleft()
            self.stats.unknown_ssrc_dropped += 1
        q.append((arrival, bytes(data)))
        self.stats.unknown_ssrc_held += 1

    def _stream(self, ssrc: int, user_id: int) -> _Stream:
        stream = self._streams.get(ssrc)
        if stream is None:
            stream = self._streams[ssrc] = _Stream(
                ssrc, user_id, JitterBuffer(depth=self.jitter_depth), OpusStream())
            self.stats.streams += 1
        return stream

    def _push(self, stream: _Stream, header: rtp.RtpHeader, opus: bytes, arrival: float) -> None:
        eseq, ets = stream.jitter.extend(header.sequence, header.timestamp)
        if stream.anchor_wall is None:
            stream.anchor_wall, stream.anchor_ts = arrival, ets
        elif abs(arrival - stream.time_of(ets)) > self.reanchor_after:
            # The sender's clock and ours disagree by far more than network jitter.
            stream.anchor_wall, stream.anchor_ts = arrival, ets
            self.stats.reanchors += 1
        stream.last_arrival = arrival
        self._emit(stream, stream.jitter.push(header.sequence, header.timestamp, opus, arrival))

    def _emit(self, stream: _Stream, frames: list[Frame]) -> None:
        st = self.stats
        for frame in frames:
            if frame.payload is None:
                pcm = stream.decoder.conceal(frame.next_payload)
            else:
                try:
                    pcm = stream.decoder.decode(frame.payload)
                except ValueError:
                    st.decode_errors += 1
                    pcm = stream.decoder.conceal(None)  # keep the timeline: conceal the slot
            st.frames += 1
            try:
                self.sink.write(stream.user_id, pcm, stream.time_of(frame.ts))
            except Exception:  # noqa: BLE001 - a sink failure must not kill receive
                st.internal_errors += 1
                log.exception("audio sink failed for user %s", stream.user_id)
        self._sync_counters(stream)

    def _sync_counters(self, stream: _Stream) -> None:
        """Fold the stream's own counters (jitter, decoder) into the totals, incrementally."""
        now = {"lost": stream.jitter.stats.lost, "late": stream.jitter.stats.late,
               "duplicate": stream.jitter.stats.duplicate,
               "concealed": stream.decoder.stats.concealed,
               "fec_recovered": stream.decoder.stats.fec}
        for name, value in now.items():
            prev = stream.counted.get(name, 0)
            if value != prev:
                setattr(self.stats, name, getattr(self.stats, name) + value - prev)
                stream.counted[name] = value

    def _end_stream(self, ssrc: int) -> None:
        stream = self._streams.pop(ssrc, None)
        if stream is None:
            return
        self._emit(stream, stream.jitter.drain())
        try:
            self.sink.end(stream.user_id)
        except Exception:  # noqa: BLE001
            self.stats.internal_errors += 1
            log.exception("audio sink end failed for user %s", stream.user_id)
