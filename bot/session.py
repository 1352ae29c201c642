"""One guild's recording: voice connection, receive pipeline, the notice, and recovery.

A `RecordingSession` owns the pieces `docs/bot.md` wires by hand: a `Recorder` whose consent
hook is the guild's policy in `BotState`, a `VoiceReceiver` that asks it before decrypting
anything, and a `ReceivingVoiceClient` feeding both. It announces itself (a message, and a
"🔴 REC" nickname prefix restored afterwards), answers /status, and when discord.py gives a
connection up after a close code Discord means to be recovered from (4015 voice server crashed,
4006 session no longer valid, a dropped network, ...) joins again with the same session id, so
the recording continues under one session. Codes that say "stay out" (4014 kicked or channel
deleted, 4021 rate limited, 4022 call terminated, 4017 DAVE required) end the recording.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import asdict
from typing import Any

import discord

from bot import replies
from bot.recorder import Member, Recorder, iso_ms
from bot.services import Services
from bot.spool import SpoolEntry
from bot.voice.discord_hook import ReceivingVoiceClient
from bot.voice.receiver import VoiceReceiver
from homelabpi.client import Client
from homelabpi.errors import NotFound
from homelabpi.keys import new_id

log = logging.getLogger(__name__)

REC_PREFIX = "🔴 REC "
NO_MENTIONS = discord.AllowedMentions.none()

# Voice gateway close code → (what it means, whether to join again). Discord's voice docs:
# 4014 and 4022 "should not reconnect", 4021 is a rate limit; 4015 asks for a resume (discord.py
# tries it; if that fails we join afresh); 4006/4009 invalidate the session (a fresh join works).
CLOSE_CODES: dict[int, tuple[str, bool]] = {
    -1: ("connection lost", True),
    1000: ("normal closure", False),
    4004: ("authentication failed", False),
    4006: ("session no longer valid", True),
    4009: ("session timed out", True),
    4011: ("voice server not found", True),
    4012: ("unknown protocol", False),
    4014: ("disconnected (kicked, moved out, or the channel was deleted)", False),
    4015: ("voice server crashed", True),
    4016: ("unknown encryption mode", False),
    4017: ("Discord requires DAVE end-to-end encryption and this bot did not offer it "
           "(is the `davey` package installed?)", False),
    4020: ("bad request", False),
    4021: ("rate limited by Discord", False),
    4022: ("call terminated", False),
}


def should_rejoin(code: int | None) -> bool:
    """Join again after losing the connection with this close code? (None: we were removed.)"""
    if code is None:
        return False
    return CLOSE_CODES.get(code, ("", True))[1]  # unknown codes: try, a bounded number of times


def describe_close(code: int | None) -> str:
    if code is None:
        return "disconnected from voice"
    return f"voice connection closed with {code}: {CLOSE_CODES.get(code, ('unknown', True))[0]}"


def dave_supported() -> bool:
    """Will discord.py offer DAVE (`max_dave_protocol_version` > 0 in IDENTIFY)?"""
    from discord import voice_state

    return bool(getattr(voice_state, "has_dave", False))


def rec_nick(name: str) -> str:
    """The nickname while recording (Discord allows 32 characters)."""
    return (REC_PREFIX + strip_rec(name))[:32]


def strip_rec(name: str) -> str:
    return name[len(REC_PREFIX):] if name.startswith(REC_PREFIX) else name


def humans(channel: Any) -> list[Any]:
    return [m for m in getattr(channel, "members", []) if not m.bot]


_GAUGES = {"held_now", "active_streams"}


class RecordingSession:
    """Records one voice channel until /leave, an empty channel, or an unrecoverable close."""

    def __init__(self, services: Services, channel: Any, *, self_user_id: int,
                 text_channel: Any = None, session_id: str | None = None,
                 rejoin_attempts: int = 5, rejoin_delay: float = 2.0) -> None:
        self.services = services
        self.channel = channel
        self.guild = channel.guild
        self.text_channel = text_channel
        self.self_user_id = int(self_user_id)
        self.session_id = session_id or new_id("s")
        self.since = time.time()
        self.rejoin_attempts = rejoin_attempts
        self.rejoin_delay = rejoin_delay
        self.recorded: Counter[str] = Counter()
        self.reconnects = 0
        self.stopped = False
        self.stop_reason = ""
        self.vc: Any = None
        self.live: LivePoster | None = None
        self._past_receive: Counter[str] = Counter()
        self._old_nick: str | None = None
        self._nick_marked = False
        self._tasks: set[asyncio.Task] = set()
        self.recorder = Recorder(
            services.spool, guild_id=self.guild.id, channel_id=channel.id,
            channel_name=channel.name, self_user_id=self.self_user_id,
            member_info=self.member_info, consent=self.consent, session_id=self.session_id,
            on_clip=self._on_clip)
        self.receiver = self._new_receiver()

    # -- the recorder's view of the guild (called on the socket-reader thread) -----------------
    def member_info(self, user_id: int) -> Member | None:
        m = self.guild.get_member(int(user_id))
        return Member(int(user_id), m.display_name, bool(m.bot)) if m is not None else None

    def consent(self, user_id: int) -> bool:
        return self.services.state.may_record(self.guild.id, user_id)

    def _dave_session(self) -> Any:
        return getattr(getattr(self.vc, "_connection", None), "dave_session", None)

    def _new_receiver(self) -> VoiceReceiver:
        return VoiceReceiver(self.recorder, wants=self.recorder.wants,
                             dave_session=self._dave_session)

    def _on_clip(self, entry: SpoolEntry) -> None:
        self.recorded[entry.metadata.get("speaker", "?")] += 1

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect (receive-capable, not deafened), start the pipeline, mark the nickname."""
        if not dave_supported():
            raise RuntimeError("discord.py cannot offer DAVE end-to-end encryption (the `davey` "
                               "package is missing), and Discord requires it on voice")
        self.vc = await self.channel.connect(cls=ReceivingVoiceClient, self_deaf=False,
                                             reconnect=True)
        self.attach(self.vc)
        await self._mark_nick()

    def attach(self, vc: Any) -> None:
        """Feed `vc`'s audio into this session and hear about its loss."""
        self.vc = vc
        vc.on_lost = self._on_lost
        vc.start_receiving(self.receiver, tickers=(self.recorder.tick,))

    async def stop(self, reason: str, *, disconnect: bool = True, announce: bool = True) -> str:
        """End the recording: leave, commit open clips, restore the nickname; returns (and by
        default posts) the summary."""
        if self.stopped:
            return f"Already stopped: {self.stop_reason}."
        self.stopped = True
        self.stop_reason = reason
        if self.services.sessions.get(self.guild.id) is self:
            del self.services.sessions[self.guild.id]
        vc, self.vc = self.vc, None
        if vc is not None:
            vc.on_lost = None
            if disconnect:
                try:
                    await vc.disconnect(force=True)
                except Exception:  # noqa: BLE001 - leaving must finish the rest regardless
                    log.exception("disconnecting from voice failed")
            else:
                vc.stop_receiving()
        self.receiver.close()
        self.recorder.close()
        self.services.spool.changed.set()  # wake the uploader for the last clips
        if self.live is not None:
            self.live.finish()
        await self._restore_nick()
        who = ", ".join(f"{name} ({n})" for name, n in sorted(self.recorded.items()))
        summary = (f"⏹️ Stopped recording {self.channel.mention}: {reason}. "
                   f"Clips: {sum(self.recorded.values())}" + (f" from {who}" if who else "")
                   + f". Session `{self.session_id}`.")
        if announce:
            await self.say(summary)
        return summary

    def _on_lost(self, code: int | None) -> None:
        """discord.py gave the connection up (cleanup we did not ask for)."""
        log.warning("lost voice in guild %s: %s", self.guild.id, describe_close(code))
        self._spawn(self._recover(code))

    async def _recover(self, code: int | None) -> None:
        old, self.vc = self.vc, None
        if old is not None:
            old.stop_receiving()
        self._retire_receiver()
        self.recorder.close()
        if not should_rejoin(code):
            await self.stop(describe_close(code), disconnect=False)
            return
        for attempt in range(self.rejoin_attempts):
            await asyncio.sleep(self.rejoin_delay * 2 ** attempt)
            if self.stopped:
                return
            if not humans(self.channel):
                await self.stop("the channel is empty", disconnect=False)
                return
            try:
                vc = await self.channel.connect(cls=ReceivingVoiceClient, self_deaf=False,
                                                reconnect=True)
            except Exception as exc:  # noqa: BLE001 - any failure: wait longer and try again
                log.warning("re-joining %s failed (attempt %d): %s", self.channel.id,
                            attempt + 1, exc)
                continue
            if self.stopped:  # /leave while we were connecting
                await vc.disconnect(force=True)
                return
            self.attach(vc)
            self.reconnects += 1
            await self.say(f"↩️ Re-joined {self.channel.mention} after: {describe_close(code)}. "
                           "Still recording.")
            return
        await self.stop(f"{describe_close(code)}; re-joining failed {self.rejoin_attempts} times",
                        disconnect=False)

    def _retire_receiver(self) -> None:
        """A new connection gets a new receiver (SSRCs change); keep the totals."""
        self.receiver.close()
        for k, v in self.receiver.snapshot().items():
            if k not in _GAUGES:
                self._past_receive[k] += v
        self.receiver = self._new_receiver()

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- consent changes and /forget -----------------------------------------------------------
    def consent_changed(self, user_id: int) -> bool:
        """Apply a /consent change now; returns True if a clip in progress was discarded."""
        self.recorder.reconsider(user_id)
        if not self.consent(user_id):
            return self.recorder.discard(user_id)
        return False

    def policy_changed(self) -> int:
        """Apply a guild policy change to everyone present; returns clips discarded."""
        self.recorder.reconsider()
        return sum(self.consent_changed(m.id) for m in humans(self.channel))

    # -- notice --------------------------------------------------------------------------------
    def notice(self) -> str:
        """The recording notice posted on /join (and where the voice channel has a chat)."""
        head = (f"🔴 **Recording** {self.channel.mention} (session `{self.session_id}`). "
                "Audio is transcribed so this server can ask what was said.")
        if self.services.state.guild_settings(self.guild.id).require_consent:
            present = humans(self.channel)
            opted = sum(1 for m in present if self.consent(m.id))
            body = (f"Only members who opted in with `/consent on` are recorded ({opted} of "
                    f"{len(present)} here); everyone else is not recorded at all.")
        else:
            body = ("This server records everyone speaking here (opt-in is turned off); "
                    "`/consent off` has no effect until an admin turns it back on.")
        tail = "`/consent off` to opt out, `/forget` to delete what you said, `/leave` to stop."
        return f"{head}\n{body}\n{tail}"

    async def greet(self, member: Any) -> None:
        """Tell someone who joins the channel that it is being recorded, and whether they are."""
        if member.bot:
            return
        state = ("you are recorded" if self.consent(member.id) else
                 "you are **not** recorded unless you run `/consent on`")
        await self.say(f"{member.mention} 🔴 {self.channel.mention} is being recorded; {state}.",
                       mention=member)

    async def say(self, text: str, mention: Any = None) -> None:
        """Post in the text channel the recording was started from (best effort)."""
        if self.text_channel is None:
            return
        allowed = discord.AllowedMentions(users=[mention]) if mention is not None else NO_MENTIONS
        try:
            await self.text_channel.send(replies.clip_text(text), allowed_mentions=allowed)
        except discord.HTTPException as exc:
            log.warning("could not post in %s: %s", getattr(self.text_channel, "id", "?"), exc)

    async def _mark_nick(self) -> None:
        me = self.guild.me
        self._old_nick = me.nick if me.nick is None else strip_rec(me.nick)
        try:
            await me.edit(nick=rec_nick(me.nick or me.name))
            self._nick_marked = True
        except discord.HTTPException as exc:  # Forbidden: no Change Nickname permission
            log.warning("cannot mark nickname in guild %s: %s", self.guild.id, exc)

    async def _restore_nick(self) -> None:
        if not self._nick_marked:
            return
        try:
            await self.guild.me.edit(nick=self._old_nick)
            self._nick_marked = False
        except discord.HTTPException as exc:
            log.warning("cannot restore nickname in guild %s: %s", self.guild.id, exc)

    # -- /status -------------------------------------------------------------------------------
    def receive_totals(self) -> dict[str, int]:
        now = self.receiver.snapshot()
        return {k: v + (0 if k in _GAUGES else self._past_receive.get(k, 0))
                for k, v in now.items()}

    def snapshot(self) -> dict[str, Any]:
        present = humans(self.channel)
        return {
            "channel": self.channel.name, "session": self.session_id, "since": iso_ms(self.since),
            "connected": bool(self.vc is not None and self.vc.is_connected()),
            "recorded": dict(self.recorded),
            "recording": [m.display_name for m in present if self.consent(m.id)],
            "not_recorded": [m.display_name for m in present if not self.consent(m.id)],
            "receive": self.receive_totals(), "recorder": asdict(self.recorder.stats),
            "reconnects": self.reconnects,
        }


class LivePoster:
    """`/join live:True`: post transcript lines to a thread as the index gets them.

    Polls the answer function's `transcript` op for the session and posts segments it has not
    posted yet. After the recording stops it keeps polling for `grace` seconds, so the last
    clips (transcribed after the stop) still appear.
    """

    def __init__(self, client: Client, guild: str, session: str, target: Any, *,
                 interval: float = 10.0, grace: float = 180.0) -> None:
        self.client = client
        self.guild = str(guild)
        self.session = session
        self.target = target
        self.interval = interval
        self.grace = grace
        self.posted: set[tuple[str, str, str]] = set()
        self.until: float | None = None
        self.task: asyncio.Task | None = None

    async def poll_once(self) -> int:
        """Post what is new; returns how many segments were posted."""
        try:
            doc = await asyncio.to_thread(self.client.transcript, self.session, self.guild)
        except NotFound:
            return 0  # nothing indexed yet
        new = [s for s in doc["segments"] if _seg_key(s) not in self.posted]
        for text in replies.chunks(replies.format_segment(s) for s in new):
            await self.target.send(text, allowed_mentions=NO_MENTIONS)
        self.posted.update(_seg_key(s) for s in new)
        return len(new)

    async def run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:  # noqa: BLE001 - a failed poll is retried at the next interval
                log.exception("live transcript poll failed for %s", self.session)
            if self.until is not None and time.monotonic() >= self.until:
                return
            await asyncio.sleep(self.interval)

    def start(self) -> asyncio.Task:
        self.task = asyncio.get_running_loop().create_task(self.run())
        return self.task

    def finish(self) -> None:
        """The recording ended: keep posting for `grace` seconds, then stop."""
        self.until = time.monotonic() + self.grace


def _seg_key(seg: dict) -> tuple[str, str, str]:
    return (seg["speaker"], seg["start"], seg["text"])
