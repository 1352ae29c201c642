"""Recording commands: /join, /leave, /status, /consent, /consent_required; voice events.

A recording announces itself where /join was run (and in the voice channel's own chat), marks
the bot's nickname, greets members who join the channel with whether they are recorded, and
ends when the last human leaves.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import replies
from bot.services import Services
from bot.session import (
    NO_MENTIONS,
    REC_PREFIX,
    LivePoster,
    RecordingSession,
    dave_supported,
    humans,
    strip_rec,
)

log = logging.getLogger(__name__)


class RecordingCog(commands.Cog):
    """Voice recording and consent."""

    def __init__(self, bot: Any, services: Services) -> None:
        self.bot = bot
        self.services = services

    @property
    def self_id(self) -> int:
        return int(self.bot.user.id)

    # -- /join ---------------------------------------------------------------------------------
    @app_commands.command(name="join", description="Record a voice channel (yours by default).")
    @app_commands.describe(channel="Voice channel to record (default: the one you are in)",
                           live="Post transcript lines to a thread as they are indexed")
    @app_commands.guild_only()
    async def join(self, interaction: discord.Interaction,
                   channel: discord.VoiceChannel | None = None, live: bool = False) -> None:
        guild = interaction.guild
        target = channel or getattr(getattr(interaction.user, "voice", None), "channel", None)
        if target is None:
            await interaction.response.send_message(
                "Join a voice channel first, or name one: `/join channel:#lab`.", ephemeral=True)
            return
        current = self.services.sessions.get(guild.id)
        if current is not None:
            await interaction.response.send_message(
                f"Already recording {current.channel.mention}; `/leave` first.", ephemeral=True)
            return
        if not dave_supported():
            await interaction.response.send_message(
                "I cannot join voice: Discord requires DAVE end-to-end encryption and the "
                "`davey` package is not installed (`pip install 'homelabpi[bot]'`).",
                ephemeral=True)
            return
        await interaction.response.defer(thinking=True)
        session = RecordingSession(self.services, target, self_user_id=self.self_id,
                                   text_channel=interaction.channel)
        self.services.sessions[guild.id] = session  # claimed before awaiting: no double join
        try:
            await session.start()
        except Exception as exc:  # noqa: BLE001 - timeouts, permissions, missing libopus …
            log.exception("joining %s failed", target.id)
            if self.services.sessions.get(guild.id) is session:
                del self.services.sessions[guild.id]
            await session.stop(f"could not join: {exc}", announce=False)
            await interaction.followup.send(f"⚠️ Could not join {target.mention}: {exc}")
            return
        notice = session.notice()
        await interaction.followup.send(notice, allowed_mentions=NO_MENTIONS)
        if getattr(interaction.channel, "id", None) != target.id and hasattr(target, "send"):
            try:  # the voice channel's own text chat: seen by whoever is in the call
                await target.send(notice, allowed_mentions=NO_MENTIONS)
            except discord.HTTPException as exc:
                log.info("no notice in the voice channel chat of %s: %s", target.id, exc)
        if live:
            thread = await self._live_thread(interaction.channel, target, session.session_id)
            session.live = LivePoster(self.services.client, str(guild.id), session.session_id,
                                      thread)
            session.live.start()
            if thread is not interaction.channel:
                await interaction.followup.send(f"Live transcript: {thread.mention}")

    async def _live_thread(self, channel: Any, voice: Any, session_id: str) -> Any:
        """A public thread for the live transcript; the channel itself if threads are not
        possible there (a voice channel's chat) or allowed (no Create Public Threads)."""
        try:
            return await channel.create_thread(
                name=f"Live: {voice.name} {session_id}"[:100],
                type=discord.ChannelType.public_thread, auto_archive_duration=1440)
        except (AttributeError, TypeError, discord.HTTPException) as exc:
            log.info("no thread for the live transcript (%s); posting in the channel", exc)
            return channel

    # -- /leave --------------------------------------------------------------------------------
    @app_commands.command(name="leave", description="Stop recording and leave the voice channel.")
    @app_commands.guild_only()
    async def leave(self, interaction: discord.Interaction) -> None:
        session = self.services.sessions.get(interaction.guild.id)
        if session is None:
            await interaction.response.send_message("Not recording.", ephemeral=True)
            return
        await interaction.response.defer(thinking=True)
        summary = await session.stop(f"stopped by {interaction.user.display_name}",
                                     announce=False)
        await interaction.followup.send(summary, allowed_mentions=NO_MENTIONS)

    # -- /status -------------------------------------------------------------------------------
    @app_commands.command(name="status",
                          description="Recording state, speakers, upload queue, error counters.")
    @app_commands.guild_only()
    async def status(self, interaction: discord.Interaction) -> None:
        session = self.services.sessions.get(interaction.guild.id)
        snaps = [session.snapshot()] if session is not None else []
        text = replies.format_status(snaps, self.services.uploader.snapshot())
        await interaction.response.send_message(text, ephemeral=True,
                                                allowed_mentions=NO_MENTIONS)

    # -- consent -------------------------------------------------------------------------------
    @app_commands.command(name="consent",
                          description="Opt in to (on) or out of (off) being recorded here.")
    @app_commands.describe(choice="on: you may be recorded; off: you are never recorded")
    @app_commands.guild_only()
    async def consent(self, interaction: discord.Interaction,
                      choice: Literal["on", "off"]) -> None:
        guild, user = interaction.guild, interaction.user
        on = choice == "on"
        self.services.state.set_consent(guild.id, user.id, on)
        session = self.services.sessions.get(guild.id)
        discarded = session.consent_changed(user.id) if session is not None else False
        required = self.services.state.guild_settings(guild.id).require_consent
        if on:
            text = "✅ You opted in: when I record a channel you are in, your voice is recorded."
        else:
            text = "🚫 You opted out: I will not record you."
            if discarded:
                text += " The clip I was recording of you was discarded."
            if not required:
                text += (" Note: this server has turned the opt-in requirement off, so everyone "
                         "in a recorded channel is recorded until an admin turns it back on.")
        text += " `/forget` deletes what was already recorded of you."
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(name="consent_required",
                          description="Admins: record only members who opted in (default on).")
    @app_commands.describe(choice="on: only opted-in members are recorded; off: everyone")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def consent_required(self, interaction: discord.Interaction,
                               choice: Literal["on", "off"]) -> None:
        guild = interaction.guild
        self.services.state.set_require_consent(guild.id, choice == "on")
        session = self.services.sessions.get(guild.id)
        if session is not None:
            session.policy_changed()
            await session.say(session.notice())
        text = ("Only members who opted in with `/consent on` are recorded." if choice == "on"
                else "Everyone speaking in a recorded channel is recorded (bots never are).")
        await interaction.response.send_message(f"Recording policy updated. {text}",
                                                ephemeral=True)

    # -- voice events --------------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_voice_state_update(self, member: Any, before: Any, after: Any) -> None:
        session = self.services.sessions.get(member.guild.id)
        if session is None:
            return
        was = getattr(before.channel, "id", None)
        now = getattr(after.channel, "id", None)
        if member.id == self.self_id:
            if now is not None and now != session.channel.id:  # someone moved us
                session.channel = after.channel
                session.recorder.channel_id = str(after.channel.id)
                session.recorder.channel_name = after.channel.name
            return
        here = session.channel.id
        if now == here and was != here:
            await session.greet(member)
        elif was == here and now != here and not humans(session.channel):
            await session.stop("everyone left the channel")

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """A crash while recording leaves the "🔴 REC" nickname behind: take it off."""
        for guild in getattr(self.bot, "guilds", []):
            me = guild.me
            if me and me.nick and me.nick.startswith(REC_PREFIX) \
                    and guild.id not in self.services.sessions:
                try:
                    await me.edit(nick=strip_rec(me.nick) or None)
                except discord.HTTPException as exc:
                    log.warning("cannot restore nickname in %s: %s", guild.id, exc)
