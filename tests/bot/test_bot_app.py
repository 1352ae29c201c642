"""The bot process: intents, registered slash commands, and how it reaches the library."""

from __future__ import annotations

import pytest
from bot_fakes import close_services, run

from bot.app import HomeLabPiBot, intents, start_in_background
from bot.cogs.memory import MemoryCog
from bot.cogs.recording import RecordingCog
from bot.services import build_services


def test_intents_are_exactly_what_the_bot_uses() -> None:
    got = intents()
    assert got.guilds and got.voice_states and got.members
    assert not got.message_content and not got.presences and not got.guild_messages


def test_cogs_register_every_slash_command(settings) -> None:
    services = build_services(settings)

    async def scenario() -> dict:
        bot = HomeLabPiBot(services)
        await bot.add_cog(RecordingCog(bot, services))
        await bot.add_cog(MemoryCog(bot, services))
        return {c.name: c for c in bot.tree.get_commands()}

    try:
        commands = run(scenario())
    finally:
        close_services(services)
    assert sorted(commands) == sorted([
        "join", "leave", "ask", "search", "sessions", "transcript", "consent",
        "consent_required", "forget", "status"])
    assert [p.name for p in commands["join"].parameters] == ["channel", "live"]
    assert [c.value for c in commands["transcript"].parameters[1].choices] == [
        "md", "srt", "vtt", "json"]
    assert [c.value for c in commands["consent"].parameters[0].choices] == ["on", "off"]
    assert commands["consent_required"].default_permissions.manage_guild
    assert all(c.guild_only for c in commands.values())


def test_services_read_through_the_gateway_they_are_given(settings) -> None:
    services = build_services(settings, "http://127.0.0.1:8080/")
    try:
        assert services.client.settings.gateway == "http://127.0.0.1:8080"
        assert not services.pump_events  # the gateway's own dispatcher delivers events
        assert services.spool.root == settings.data_dir / "bot" / "spool"
        assert services.state.path == settings.data_dir / "bot" / "state.sqlite3"
    finally:
        services.state.close()


def test_alone_without_a_gateway_the_bot_delivers_events_itself(settings) -> None:
    services = build_services(settings)
    try:
        assert services.client.settings.gateway is None and services.pump_events
    finally:
        close_services(services)


def test_start_without_a_token_says_what_is_missing(settings) -> None:
    with pytest.raises(RuntimeError, match="DISCORD_TOKEN"):
        start_in_background(settings, "http://127.0.0.1:8080")
