"""Discord stand-ins at the narrowest boundary: what the bot would send to Discord's servers.

Only objects that would talk to Discord are faked: the interaction's response/followup, text
channels, the guild/member cache, and `VoiceChannel.connect` (which would open the voice
websocket). Slash commands are the real `app_commands` callbacks, the pipeline behind them (consent
state, recorder, receiver, spool, uploader, store, functions, index) is real.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from bot.voice.simclient import SimSpeaker
from bot.voice.transport import XCHACHA, TransportCipher

KEY = bytes(range(50, 82))
GUILD_ID = 4242
BOT_ID = 42


@dataclass
class Sent:
    """One message the bot sent (interaction reply, followup, channel message)."""

    where: str
    content: str | None
    kwargs: dict[str, Any]

    @property
    def file(self) -> Any:
        return self.kwargs.get("file")


class FakeMessageable:
    """A text channel or thread: records what is sent."""

    def __init__(self, id: int, name: str, log: list[Sent] | None = None) -> None:
        self.id = id
        self.name = name
        self.mention = f"<#{id}>"
        self.sent: list[Sent] = [] if log is None else log
        self.threads: list[FakeMessageable] = []

    async def send(self, content: str | None = None, **kwargs: Any) -> None:
        self.sent.append(Sent(self.name, content, kwargs))

    async def create_thread(self, *, name: str, **kwargs: Any) -> FakeMessageable:
        thread = FakeMessageable(self.id * 10 + len(self.threads) + 1, name)
        self.threads.append(thread)
        return thread


class FakeMember:
    def __init__(self, id: int, name: str, *, bot: bool = False, guild: Any = None) -> None:
        self.id = id
        self.name = name
        self.nick: str | None = None
        self.bot = bot
        self.guild = guild
        self.voice: Any = None
        self.mention = f"<@{id}>"
        self.nick_history: list[str | None] = []

    @property
    def display_name(self) -> str:
        return self.nick or self.name

    async def edit(self, *, nick: str | None = None) -> None:
        self.nick = nick
        self.nick_history.append(nick)


class FakeVoiceClient:
    """What `channel.connect(cls=ReceivingVoiceClient)` returns, minus the Discord sockets."""

    def __init__(self, channel: FakeVoiceChannel) -> None:
        self.channel = channel
        self.on_lost: Any = None
        self.receiver: Any = None
        self.tickers: tuple = ()
        self.connected = True
        self._connection = type("State", (), {"dave_session": None})()

    def start_receiving(self, receiver: Any, tickers: tuple = ()) -> None:
        self.receiver, self.tickers = receiver, tickers

    def stop_receiving(self) -> None:
        if self.receiver is not None:
            self.receiver.close()
            self.receiver = None

    async def disconnect(self, *, force: bool = False) -> None:
        self.stop_receiving()
        self.connected = False

    def is_connected(self) -> bool:
        return self.connected


class FakeVoiceChannel(FakeMessageable):
    def __init__(self, id: int, name: str, guild: FakeGuild) -> None:
        super().__init__(id, name)
        self.guild = guild
        self.members: list[FakeMember] = []
        self.connects: list[FakeVoiceClient] = []
        self.fail_connects = 0

    async def connect(self, *, cls: Any = None, self_deaf: bool = True,
                      reconnect: bool = True, **kwargs: Any) -> FakeVoiceClient:
        assert self_deaf is False, "a deafened client receives no audio"
        if self.fail_connects:
            self.fail_connects -= 1
            raise TimeoutError("voice handshake timed out")
        vc = FakeVoiceClient(self)
        self.connects.append(vc)
        return vc

    def enter(self, member: FakeMember) -> None:
        self.members.append(member)
        member.voice = type("VoiceState", (), {"channel": self})()

    def exit(self, member: FakeMember) -> None:
        self.members.remove(member)
        member.voice = None


class FakeGuild:
    def __init__(self, id: int = GUILD_ID) -> None:
        self.id = id
        self.name = "homelab"
        self.me = FakeMember(BOT_ID, "HomeLabPi", bot=True, guild=self)
        self._members: dict[int, FakeMember] = {BOT_ID: self.me}

    def add(self, id: int, name: str, *, bot: bool = False) -> FakeMember:
        m = FakeMember(id, name, bot=bot, guild=self)
        self._members[id] = m
        return m

    def get_member(self, id: int) -> FakeMember | None:
        return self._members.get(id)


class _Response:
    def __init__(self, log: list[Sent]) -> None:
        self._log = log
        self.deferred: dict[str, Any] | None = None

    async def send_message(self, content: str | None = None, **kwargs: Any) -> None:
        assert not self.is_done(), "an interaction is answered once"
        self._log.append(Sent("response", content, kwargs))

    async def defer(self, **kwargs: Any) -> None:
        assert not self.is_done(), "an interaction is answered once"
        self.deferred = kwargs

    def is_done(self) -> bool:
        return self.deferred is not None or any(s.where == "response" for s in self._log)


class _Followup:
    def __init__(self, log: list[Sent], response: _Response) -> None:
        self._log = log
        self._response = response

    async def send(self, content: str | None = None, **kwargs: Any) -> None:
        assert self._response.is_done(), "followups need a deferred or answered interaction"
        self._log.append(Sent("followup", content, kwargs))


class FakeInteraction:
    """The parts of `discord.Interaction` the cogs use; records every reply."""

    def __init__(self, user: FakeMember, guild: FakeGuild, channel: FakeMessageable) -> None:
        self.user = user
        self.guild = guild
        self.channel = channel
        self.created_at = datetime.now(UTC)
        self.sent: list[Sent] = []
        self.response = _Response(self.sent)
        self.followup = _Followup(self.sent, self.response)

    @property
    def guild_id(self) -> int:
        return self.guild.id

    @property
    def text(self) -> str:
        return "\n".join(s.content or "" for s in self.sent)


class FakeBot:
    def __init__(self) -> None:
        self.user = type("User", (), {"id": BOT_ID})()
        self.guilds: list[FakeGuild] = []


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def speak(receiver: Any, recorder: Any, talks: list[tuple[int, int, np.ndarray, float]],
          *, seed: int = 7, corrupt: int = 0) -> dict[int, int]:
    """Real Opus/RTP/AEAD packets for (ssrc, user, pcm, start) into the session's receiver.

    SPEAKING (ssrc → user) is applied first, packets arrive 30 ms after sending, the clock
    then runs 5 s on so silence cuts the clips. `corrupt` flips a byte in that many packets.
    Returns packets sent per user.
    """
    cipher = TransportCipher(XCHACHA, KEY)
    receiver.set_cipher(cipher)
    rng = random.Random(seed)
    events: list[tuple[float, bytes]] = []
    sent: dict[int, int] = {}
    for ssrc, user, pcm, at in talks:
        receiver.map_ssrc(ssrc, user)
        pkts = SimSpeaker(ssrc, cipher, rng=rng).talk(pcm, at)
        sent[user] = sent.get(user, 0) + len(pkts)
        events += [(p.send_time + 0.03, p.data) for p in pkts]
    events.sort(key=lambda e: e[0])
    for i in range(corrupt):
        arrival, data = events[10 + i * 7]
        bad = bytearray(data)
        bad[-10] ^= 0x40
        events[10 + i * 7] = (arrival, bytes(bad))
    now = events[0][0]
    for arrival, data in events:
        now = max(now, arrival)
        receiver.feed(data, arrival)
        receiver.tick(now)
        recorder.tick(now)
    for t in np.arange(now, now + 5, 0.1):
        receiver.tick(float(t))
        recorder.tick(float(t))
    return sent


@dataclass
class World:
    """A guild with a text channel, a voice channel, and members."""

    guild: FakeGuild = field(default_factory=FakeGuild)
    text: FakeMessageable = field(default_factory=lambda: FakeMessageable(500, "general"))
    voice: FakeVoiceChannel | None = None

    def __post_init__(self) -> None:
        self.voice = FakeVoiceChannel(600, "lab", self.guild)

    def interaction(self, user: FakeMember) -> FakeInteraction:
        return FakeInteraction(user, self.guild, self.text)


def make_services(settings: Any) -> Any:
    """The bot's real services (store, client, spool, uploader, state) for a test data dir.

    The uploader thread is not started: tests drain the spool with `uploader.run_once()`.
    """
    from bot.services import build_services

    return build_services(settings)


def close_services(services: Any) -> None:
    services.state.close()
    services.client.runtime.close()
