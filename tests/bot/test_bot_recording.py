"""/join, /leave, /status, /consent with the real recording pipeline behind them.

Audio is real (libopus frames in RTP sealed with XChaCha20-Poly1305 by bot/voice/simclient.py)
and goes through the session's own receiver, recorder, spool, uploader and store; only the
voice connection (`VoiceChannel.connect`) and the Interaction are stand-ins.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from bot_fakes import (
    BOT_ID,
    GUILD_ID,
    KEY,
    FakeBot,
    World,
    run,
    speak,
)

from bot.cogs.recording import RecordingCog
from bot.consent import BotState
from bot.session import REC_PREFIX
from bot.voice.simclient import SimSpeaker, tone
from bot.voice.transport import XCHACHA, TransportCipher

T0 = 1_800_000_000.0
ALICE, BOB, CAROL, MUSIC = 111, 222, 333, 999


@pytest.fixture
def world() -> World:
    w = World()
    for uid, name, bot in ((ALICE, "Alice", False), (BOB, "Bob", False),
                           (CAROL, "Carol", False), (MUSIC, "MusicBot", True)):
        setattr(w, name.lower(), w.guild.add(uid, name, bot=bot))
    w.voice.enter(w.alice)
    w.voice.enter(w.bob)
    w.voice.enter(w.musicbot)
    return w


def _cog(services) -> RecordingCog:
    return RecordingCog(FakeBot(), services)


def _stored_audio(services) -> list:
    return list(services.store.list(f"audio/{GUILD_ID}/"))


def test_only_members_who_opted_in_are_recorded(services, world) -> None:
    """Alice opts in, Bob never does, a music bot plays: only Alice reaches the store."""
    cog = _cog(services)

    async def scenario():
        await RecordingCog.consent.callback(cog, world.interaction(world.alice), "on")
        join = world.interaction(world.alice)
        await RecordingCog.join.callback(cog, join, None, False)
        session = services.sessions[GUILD_ID]
        vc = world.voice.connects[0]
        assert vc.receiver is session.receiver  # the pipeline is attached to the connection
        sent = speak(session.receiver, session.recorder, [
            (0xA1, ALICE, tone(440, 1.5), T0),
            (0xB2, BOB, tone(660, 1.5), T0 + 0.2),
            (0xC3, MUSIC, tone(880, 1.0), T0 + 0.4),
        ])
        stats = session.receiver.snapshot()
        await RecordingCog.leave.callback(cog, world.interaction(world.alice))
        return join, sent, stats

    join, sent, stats = run(scenario())
    # Bob's and the bot's packets were refused before decryption: nothing of them was decoded.
    assert stats["ignored"] == sent[BOB] + sent[MUSIC]
    assert stats["frames"] == sent[ALICE] and stats["decrypt_errors"] == 0
    assert "1 of 2 here" in join.sent[-1].content  # the notice counts who is recorded

    spooled = services.spool.pending()
    assert [e.metadata["speaker-id"] for e in spooled] == [str(ALICE)]
    assert services.uploader.run_once()
    stored = _stored_audio(services)
    assert len(stored) == 1 and not services.spool.pending()
    meta = services.store.stat(stored[0].key).metadata
    assert unquote(meta["speaker-id"]) == str(ALICE) and unquote(meta["speaker"]) == "Alice"
    assert stored[0].key.startswith(f"audio/{GUILD_ID}/")


def test_guild_can_turn_the_opt_in_requirement_off(services, world) -> None:
    cog = _cog(services)

    async def scenario():
        await RecordingCog.consent_required.callback(cog, world.interaction(world.alice), "off")
        await RecordingCog.join.callback(cog, world.interaction(world.alice), None, False)
        session = services.sessions[GUILD_ID]
        speak(session.receiver, session.recorder, [
            (0xA1, ALICE, tone(440, 1.0), T0), (0xB2, BOB, tone(660, 1.0), T0),
            (0xC3, MUSIC, tone(880, 1.0), T0)])
        await session.stop("test over")

    run(scenario())
    assert sorted(e.metadata["speaker"] for e in services.spool.pending()) == ["Alice", "Bob"]


def test_consent_off_discards_the_clip_in_progress(services, world) -> None:
    cog = _cog(services)

    async def scenario():
        await RecordingCog.consent.callback(cog, world.interaction(world.alice), "on")
        await RecordingCog.join.callback(cog, world.interaction(world.alice), None, False)
        session = services.sessions[GUILD_ID]
        receiver, recorder = session.receiver, session.recorder
        speak_open = recorder.open_clip_ids
        # Alice is mid-sentence: packets without the trailing silence, so her clip stays open.
        cipher = TransportCipher(XCHACHA, KEY)
        receiver.set_cipher(cipher)
        receiver.map_ssrc(0xA1, ALICE)
        for p in SimSpeaker(0xA1, cipher).talk(tone(440, 1.0), T0):
            receiver.feed(p.data, p.send_time + 0.03)
        assert speak_open()
        off = world.interaction(world.alice)
        await RecordingCog.consent.callback(cog, off, "off")
        assert not speak_open()
        recorder.tick(T0 + 10)
        await session.stop("test over")
        return off

    off = run(scenario())
    assert "discarded" in off.sent[0].content and off.sent[0].kwargs["ephemeral"] is True
    assert services.spool.pending() == [] and list(services.spool.tmp.iterdir()) == []


def test_join_announces_marks_the_nickname_and_leave_restores_it(services, world) -> None:
    cog = _cog(services)
    world.guild.me.nick = "Archivist"

    async def scenario():
        join = world.interaction(world.alice)
        await RecordingCog.join.callback(cog, join, None, False)
        nick_while = world.guild.me.nick
        again = world.interaction(world.bob)
        await RecordingCog.join.callback(cog, again, None, False)
        leave = world.interaction(world.bob)
        await RecordingCog.leave.callback(cog, leave)
        return join, nick_while, again, leave

    join, nick_while, again, leave = run(scenario())
    assert nick_while == REC_PREFIX + "Archivist"
    assert world.guild.me.nick == "Archivist"  # restored, not reset
    notice = join.sent[-1].content
    assert notice.startswith("🔴 **Recording** <#600>") and "/consent on" in notice
    assert "0 of 2 here" in notice  # default policy: opt-in required, nobody opted in yet
    assert world.voice.sent[0].content == notice  # also in the voice channel's own chat
    assert "Already recording" in again.sent[0].content
    assert leave.sent[-1].content.startswith("⏹️ Stopped recording <#600>: stopped by Bob")
    assert GUILD_ID not in services.sessions and not world.voice.connects[0].connected


def test_join_without_a_voice_channel_explains(services, world) -> None:
    cog = _cog(services)
    inter = world.interaction(world.carol)  # not in any voice channel
    run(RecordingCog.join.callback(cog, inter, None, False))
    assert "Join a voice channel first" in inter.sent[0].content
    assert world.voice.connects == [] and GUILD_ID not in services.sessions


def test_status_reports_counters(services, world) -> None:
    cog = _cog(services)

    async def scenario():
        await RecordingCog.consent.callback(cog, world.interaction(world.alice), "on")
        await RecordingCog.join.callback(cog, world.interaction(world.alice), None, False)
        session = services.sessions[GUILD_ID]
        sent = speak(session.receiver, session.recorder, [
            (0xA1, ALICE, tone(440, 1.2), T0), (0xB2, BOB, tone(660, 1.0), T0)], corrupt=2)
        status = world.interaction(world.bob)
        await RecordingCog.status.callback(cog, status)
        snap = session.receiver.snapshot()
        await session.stop("test over")
        return status, sent, snap

    status, sent, snap = run(scenario())
    text = status.sent[0].content
    assert status.sent[0].kwargs["ephemeral"] is True
    counters = dict(re.findall(r"(\w+) (\d+)", text.split("Receive: ")[1].split("\n")[0]))
    assert int(counters["packets"]) == sent[ALICE] + sent[BOB] == snap["packets"]
    assert int(counters["decrypt_errors"]) == snap["decrypt_errors"] >= 1  # the corrupt ones
    assert "Recorded: Alice (1 clips)" in text
    assert "In the channel, recorded: Alice" in text
    assert "not recorded (no consent): Bob" in text  # the music bot is not even listed
    assert re.search(r"Upload spool: 1 queued, 0 uploaded, 0 failures", text)


def test_status_when_idle_still_shows_the_spool(services, world) -> None:
    inter = world.interaction(world.alice)
    run(RecordingCog.status.callback(_cog(services), inter))
    assert inter.sent[0].content.startswith("Not recording.")
    assert "Upload spool: 0 queued" in inter.sent[0].content


def test_last_human_leaving_ends_the_recording(services, world) -> None:
    cog = _cog(services)

    class _State:
        def __init__(self, channel):
            self.channel = channel

    async def scenario():
        await RecordingCog.join.callback(cog, world.interaction(world.alice), None, False)
        world.voice.enter(world.carol)
        await cog.on_voice_state_update(world.carol, _State(None), _State(world.voice))
        world.voice.exit(world.alice)
        await cog.on_voice_state_update(world.alice, _State(world.voice), _State(None))
        still = GUILD_ID in services.sessions
        world.voice.exit(world.bob)
        await cog.on_voice_state_update(world.bob, _State(world.voice), _State(None))
        world.voice.exit(world.carol)  # the music bot stays: bots do not keep a recording going
        await cog.on_voice_state_update(world.carol, _State(world.voice), _State(None))
        return still

    assert run(scenario()) is True
    assert GUILD_ID not in services.sessions
    said = [s.content for s in world.text.sent]
    assert any("<@333> 🔴 <#600> is being recorded; you are **not** recorded" in s
               for s in said)
    assert said[-1].startswith("⏹️ Stopped recording <#600>: everyone left the channel")
    assert world.guild.me.nick is None


def test_consent_survives_a_restart(services, world, settings) -> None:
    cog = _cog(services)
    run(RecordingCog.consent.callback(cog, world.interaction(world.alice), "on"))
    run(RecordingCog.consent.callback(cog, world.interaction(world.bob), "on"))
    run(RecordingCog.consent.callback(cog, world.interaction(world.bob), "off"))
    run(RecordingCog.consent_required.callback(cog, world.interaction(world.alice), "off"))
    services.state.close()

    path = settings.data_dir / "bot" / "state.sqlite3"
    assert path.is_file()
    again = BotState.in_data_dir(settings.data_dir)  # a new process, same data dir
    try:
        assert again.has_consent(GUILD_ID, ALICE) and not again.has_consent(GUILD_ID, BOB)
        assert not again.has_consent(GUILD_ID, CAROL)  # never asked: no
        assert again.consenting(GUILD_ID) == {ALICE}
        assert again.guild_settings(GUILD_ID).require_consent is False
        assert again.guild_settings(1).require_consent is True  # other guilds: the default
        assert not again.has_consent(1, ALICE)  # consent is per guild
    finally:
        again.close()
    services.state = BotState.in_data_dir(settings.data_dir)  # for the fixture's teardown


def test_bot_never_records_itself(services, world) -> None:
    from bot.session import RecordingSession

    services.state.set_require_consent(GUILD_ID, False)
    session = RecordingSession(services, world.voice, self_user_id=BOT_ID)
    assert not session.recorder.wants(BOT_ID) and not session.recorder.wants(MUSIC)
    assert session.recorder.wants(ALICE)
