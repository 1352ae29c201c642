"""Losing the voice connection: which close codes bring the bot back, and DAVE advertisement.

discord.py's own `DiscordVoiceWebSocket` (fed by a stand-in aiohttp socket) raises the close;
our `ReceivingVoiceClient` learns the code and reports discord.py's cleanup; the session
decides whether to join again.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import aiohttp
import davey
import discord
import pytest
from bot_fakes import GUILD_ID, FakeBot, World, run
from discord.errors import ConnectionClosed
from discord.gateway import DiscordVoiceWebSocket

from bot.cogs.recording import RecordingCog
from bot.session import describe_close, should_rejoin
from bot.voice.discord_hook import ReceivingVoiceClient


class _ClosingAiohttpWs:
    """An aiohttp websocket that Discord closes with `code` on the next receive."""

    def __init__(self, code: int | None = None) -> None:
        self.close_code = code
        self.sent: list[str] = []

    async def receive(self):
        return SimpleNamespace(type=aiohttp.WSMsgType.CLOSE, data=self.close_code, extra="")

    async def send_str(self, s: str) -> None:
        self.sent.append(s)


def _voice_client() -> ReceivingVoiceClient:
    client = discord.Client(intents=discord.Intents.none())
    channel = SimpleNamespace(id=5, guild=SimpleNamespace(id=1),
                              _get_voice_client_key=lambda: (1, "guild_id"))
    return ReceivingVoiceClient(client, channel)


@pytest.mark.parametrize("code, rejoin", [
    (4015, True), (4006, True), (4009, True), (-1, True), (4011, True),
    (4014, False), (4022, False), (4021, False), (4017, False), (1000, False), (None, False),
])
def test_close_code_policy(code, rejoin) -> None:
    assert should_rejoin(code) is rejoin
    if code == 4017:
        assert "DAVE" in describe_close(code)


def test_voice_client_learns_the_close_code_and_reports_an_unrequested_cleanup() -> None:
    async def scenario():
        vc = _voice_client()
        lost: list[int | None] = []
        vc.on_lost = lost.append
        try:
            ws = DiscordVoiceWebSocket(_ClosingAiohttpWs(4015), loop=asyncio.get_running_loop(),
                                       hook=vc._connection.hook)
            ws._connection = vc._connection
            await ws.received_message({"op": 13, "d": {"user_id": "9"}})  # any message
            with pytest.raises(ConnectionClosed) as closed:
                await ws.poll_event()  # what discord.py's _poll_voice_ws awaits
            assert closed.value.code == 4015 and vc.last_close_code == 4015
            vc.cleanup()  # discord.py gave up (e.g. the resume timed out)
            vc.cleanup()  # reported once
            # A new connection's SESSION_DESCRIPTION clears the code: a later plain removal
            # (voice state without a channel, no close code) must not look like a crash.
            await vc._ws_hook(ws, {"op": 4, "d": {}})
            assert vc.last_close_code is None
        finally:
            vc._connection._socket_reader.stop()
        return lost

    assert run(scenario()) == [4015]


def test_our_own_disconnect_is_not_a_loss() -> None:
    async def scenario():
        vc = _voice_client()
        lost: list[int | None] = []
        vc.on_lost = lost.append
        vc.last_close_code = 4006
        vc._connection._disconnected.set()  # Discord's "you left" voice state, already here
        try:
            await vc.disconnect(force=True)
        finally:
            vc._connection._socket_reader.stop()
        return lost

    assert run(scenario()) == []


def test_identify_advertises_dave() -> None:
    """4017 means 'DAVE required': discord.py must offer it, which it does when davey loads."""
    async def scenario():
        vc = _voice_client()
        state = vc._connection
        try:
            vc.client._connection.user = SimpleNamespace(id=42)
            state.server_id, state.session_id, state.token = 1, "sess", "tok"
            fake = _ClosingAiohttpWs()
            ws = DiscordVoiceWebSocket(fake, loop=asyncio.get_running_loop(), hook=state.hook)
            ws._connection = state
            await ws.identify()
        finally:
            state._socket_reader.stop()
        return json.loads(fake.sent[0])

    identify = run(scenario())
    assert identify["op"] == 0
    assert identify["d"]["max_dave_protocol_version"] == davey.DAVE_PROTOCOL_VERSION >= 1


def _recording(services):
    world = World()
    alice = world.guild.add(111, "Alice")
    world.voice.enter(alice)
    cog = RecordingCog(FakeBot(), services)
    return world, alice, cog


def test_session_rejoins_after_a_voice_server_crash(services) -> None:
    world, alice, cog = _recording(services)

    async def scenario():
        await RecordingCog.join.callback(cog, world.interaction(alice), None, False)
        session = services.sessions[GUILD_ID]
        session.rejoin_delay = 0
        first = world.voice.connects[0]
        world.voice.fail_connects = 1  # the first attempt times out, the second works
        first.on_lost(4015)
        await asyncio.gather(*session._tasks)
        return session, first

    session, first = run(scenario())
    assert len(world.voice.connects) == 2 and services.sessions[GUILD_ID] is session
    second = world.voice.connects[1]
    assert session.vc is second and second.receiver is session.receiver
    assert second.on_lost is not None and session.reconnects == 1
    assert first.receiver is None  # the old pipeline was detached
    assert world.text.sent[-1].content.startswith(
        "↩️ Re-joined <#600> after: voice connection closed with 4015")
    assert session.recorder.session == session.session_id  # one session across the gap


def test_session_ends_when_kicked(services) -> None:
    world, alice, cog = _recording(services)

    async def scenario():
        await RecordingCog.join.callback(cog, world.interaction(alice), None, False)
        session = services.sessions[GUILD_ID]
        session.rejoin_delay = 0
        world.voice.connects[0].on_lost(4014)
        await asyncio.gather(*session._tasks)

    run(scenario())
    assert len(world.voice.connects) == 1 and GUILD_ID not in services.sessions
    assert "closed with 4014" in world.text.sent[-1].content
    assert world.guild.me.nick is None  # the REC marker is gone


def test_session_gives_up_after_bounded_attempts(services) -> None:
    world, alice, cog = _recording(services)

    async def scenario():
        await RecordingCog.join.callback(cog, world.interaction(alice), None, False)
        session = services.sessions[GUILD_ID]
        session.rejoin_delay = 0
        world.voice.fail_connects = 99
        world.voice.connects[0].on_lost(4006)
        await asyncio.gather(*session._tasks)
        return session

    session = run(scenario())
    assert GUILD_ID not in services.sessions and world.voice.fail_connects == 99 - 5
    assert "re-joining failed 5 times" in session.stop_reason
