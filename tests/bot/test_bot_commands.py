"""Slash commands answered from the real pipeline: ingest → index → answer → Discord reply.

The callbacks are the real `app_commands` callbacks; only the Interaction (what would go back to
Discord) is a stand-in that records replies.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bot_fakes import GUILD_ID, World, run

from bot.cogs.memory import MemoryCog
from bot.session import LivePoster
from homelabpi.formats import render
from homelabpi.ingest import ingest

DATA = Path(__file__).resolve().parent.parent / "data"
T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


@pytest.fixture
def standup(services) -> str:
    """The home-lab stand-up captions, ingested into the bot's guild; returns the session."""
    report = ingest(services.client, [DATA / "homelab-standup.vtt"], guild=str(GUILD_ID),
                    channel="lab", speaker="Alice", session="s-standup", started_at=T0)
    assert report.ok, report.as_dict()
    return report.session


@pytest.fixture
def world() -> World:
    w = World()
    w.alice = w.guild.add(111, "Alice")
    return w


def test_ask_replies_with_the_cited_answer(services, standup, world) -> None:
    cog = MemoryCog(None, services)
    inter = world.interaction(world.alice)
    run(MemoryCog.ask.callback(cog, inter, "Where did the backup NAS go?"))
    assert inter.response.deferred is not None  # answered within Discord's 3 s, then followed
    (reply,) = inter.sent
    assert reply.where == "followup"
    text = reply.content
    assert "garage rack" in text.split("\n")[2]  # the answer line, after the quoted question
    cite = next(line for line in text.split("\n") if line.startswith("— "))
    assert cite.startswith("— **Alice**, <t:")
    epoch = int(re.search(r"<t:(\d+):f>", cite).group(1))
    assert T0.timestamp() + 2 <= epoch <= T0.timestamp() + 6.5  # the cue 00:00:02 → 00:00:06.5
    assert "#lab" in cite and "garage rack" in cite
    # Transcribed speech never pings anyone.
    assert reply.kwargs["allowed_mentions"].everyone is False


def test_ask_in_another_guild_finds_nothing(services, standup, world) -> None:
    from bot_fakes import FakeGuild

    world.guild = FakeGuild(id=9999)
    cog = MemoryCog(None, services)
    inter = world.interaction(world.alice)
    run(MemoryCog.ask.callback(cog, inter, "Where did the backup NAS go?"))
    assert "garage" not in inter.text and "could not find" in inter.text.lower()


@pytest.mark.parametrize("fmt", ["md", "srt", "vtt", "json"])
def test_transcript_is_attached_in_the_requested_format(services, standup, world, fmt) -> None:
    cog = MemoryCog(None, services)
    inter = world.interaction(world.alice)
    run(MemoryCog.transcript.callback(cog, inter, None, fmt))  # default: the latest session
    (reply,) = inter.sent
    assert reply.file is not None and reply.file.filename == f"{standup}.{fmt}"
    body = reply.file.fp.read().decode("utf-8")
    assert body == render(services.client.transcript(standup, str(GUILD_ID)), fmt)
    if fmt == "srt":
        assert "00:00:02,000 --> 00:00:06,500\nAlice: Morning." in body
    elif fmt == "vtt":
        assert body.startswith("WEBVTT") and "<v Carol>I will update the Grafana" in body
    elif fmt == "json":
        assert [s["speaker"] for s in json.loads(body)["segments"]] == [
            "Alice", "Bob", "Alice", "Carol", "Bob"]
    else:
        assert "**Bob** [00:00:23]: The UPS battery alarm" in body
    assert "5 segments" in reply.content and "Alice, Bob, Carol" in reply.content


def test_transcript_of_an_unknown_session_says_so(services, standup, world) -> None:
    cog = MemoryCog(None, services)
    inter = world.interaction(world.alice)
    run(MemoryCog.transcript.callback(cog, inter, "s-nope", "md"))
    (reply,) = inter.sent
    assert reply.file is None and "no session 's-nope'" in reply.content
    assert reply.kwargs.get("ephemeral") is True


def test_search_and_sessions(services, standup, world) -> None:
    cog = MemoryCog(None, services)
    inter = world.interaction(world.alice)
    run(MemoryCog.search.callback(cog, inter, "battery"))
    assert "**Bob**: The UPS battery alarm" in inter.text and "`s-standup`" in inter.text
    inter = world.interaction(world.alice)
    run(MemoryCog.sessions.callback(cog, inter))
    assert "`s-standup`" in inter.text and "Alice, Bob, Carol (1 clips)" in inter.text
    assert f"<t:{int(T0.timestamp())}:f>" in inter.text


def test_live_posts_each_indexed_segment_once(services, standup, world, tmp_path) -> None:
    thread = world.text

    async def scenario() -> tuple[int, int, int]:
        live = LivePoster(services.client, str(GUILD_ID), standup, thread)
        first = await live.poll_once()
        again = await live.poll_once()
        # A new clip of the same session is indexed: only its lines are posted.
        extra = tmp_path / "later.vtt"
        extra.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:03.000\n<v Dave>Rack two is full.\n")
        ingest(services.client, [extra], guild=str(GUILD_ID), channel="lab", speaker="Dave",
               session=standup, started_at=T0.replace(minute=5))
        third = await live.poll_once()
        return first, again, third

    first, again, third = run(scenario())
    assert (first, again, third) == (5, 0, 1)
    posted = "\n".join(s.content for s in thread.sent)
    assert posted.count("Morning. I finally moved the backup NAS") == 1
    assert "**Dave**: Rack two is full." in thread.sent[-1].content
    assert all(s.kwargs["allowed_mentions"].everyone is False for s in thread.sent)
