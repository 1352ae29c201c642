"""Memory commands: /ask, /search, /sessions, /transcript, /forget.

Every read goes through `homelabpi.client.Client` (the answer function, over the gateway when
one is configured), run in a worker thread so a slow answer never blocks the voice event loop.
Interactions are deferred first: Discord wants a reply within 3 seconds, an answer can take
longer on a Raspberry Pi.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import replies
from bot.services import Services
from bot.session import NO_MENTIONS
from homelabpi.errors import HomeLabPiError, NotFound, Unavailable
from homelabpi.forget import forget_speaker
from homelabpi.formats import render
from homelabpi.transcripts import iso

log = logging.getLogger(__name__)


def _problem(exc: HomeLabPiError) -> str:
    if isinstance(exc, Unavailable):
        return f"⚠️ The HomeLabPi functions are not reachable right now: {exc}"
    return f"⚠️ {exc}"


class MemoryCog(commands.Cog):
    """Questions about what was said, transcripts, and forgetting."""

    def __init__(self, bot: Any, services: Services) -> None:
        self.bot = bot
        self.services = services

    @property
    def client(self) -> Any:
        return self.services.client

    async def _read(self, interaction: discord.Interaction, call: Any, *args: Any,
                    **kwargs: Any) -> Any:
        """Run a client call off the event loop; on failure tell the caller and return None."""
        try:
            return await asyncio.to_thread(call, *args, **kwargs)
        except HomeLabPiError as exc:
            await interaction.followup.send(_problem(exc), ephemeral=True)
            return None

    # -- /ask ----------------------------------------------------------------------------------
    @app_commands.command(name="ask", description="Ask what was said; the answer cites who "
                          "said it and when.")
    @app_commands.describe(question="e.g. Where did the backup NAS go?")
    @app_commands.guild_only()
    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        await interaction.response.defer(thinking=True)
        channel = interaction.channel
        thread = str(channel.id) if isinstance(channel, discord.Thread) else ""
        result = await self._read(interaction, self.client.ask, question,
                                  str(interaction.guild.id), asker=interaction.user.display_name,
                                  thread=thread, now=iso(interaction.created_at))
        if result is None:
            return
        await interaction.followup.send(replies.format_answer(result, question),
                                        allowed_mentions=NO_MENTIONS)

    # -- /search -------------------------------------------------------------------------------
    @app_commands.command(name="search", description="Full-text search over what was said.")
    @app_commands.describe(text="Words to look for")
    @app_commands.guild_only()
    async def search(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.response.defer(thinking=True)
        hits = await self._read(interaction, self.client.search, text, str(interaction.guild.id))
        if hits is None:
            return
        await interaction.followup.send(replies.format_hits(hits, text),
                                        allowed_mentions=NO_MENTIONS)

    # -- /sessions -----------------------------------------------------------------------------
    @app_commands.command(name="sessions", description="Recorded sessions, newest first.")
    @app_commands.guild_only()
    async def sessions(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        found = await self._read(interaction, self.client.sessions, str(interaction.guild.id))
        if found is None:
            return
        await interaction.followup.send(replies.format_sessions(found),
                                        allowed_mentions=NO_MENTIONS)

    # -- /transcript ---------------------------------------------------------------------------
    @app_commands.command(name="transcript",
                          description="A session's transcript as a file (default: the latest).")
    @app_commands.describe(session="Session id (see /sessions); default: the latest",
                           format="md, srt, vtt or json")
    @app_commands.guild_only()
    async def transcript(self, interaction: discord.Interaction, session: str | None = None,
                         format: Literal["md", "srt", "vtt", "json"] = "md") -> None:
        await interaction.response.defer(thinking=True)
        guild = str(interaction.guild.id)
        try:
            if not session:
                found = await asyncio.to_thread(self.client.sessions, guild)
                if not found:
                    raise NotFound("no recorded sessions yet")
                session = found[0]["session"]
            doc = await asyncio.to_thread(self.client.transcript, session, guild)
            text = render(doc, format)
        except HomeLabPiError as exc:
            await interaction.followup.send(_problem(exc), ephemeral=True)
            return
        file = discord.File(io.BytesIO(text.encode("utf-8")), filename=f"{session}.{format}")
        speakers = sorted({s["speaker"] for s in doc["segments"]})
        await interaction.followup.send(
            f"Session `{session}`: {len(doc['segments'])} segments, "
            f"{', '.join(speakers) or 'nobody'}.", file=file, allowed_mentions=NO_MENTIONS)

    @transcript.autocomplete("session")
    async def _session_choices(self, interaction: discord.Interaction,
                               current: str) -> list[app_commands.Choice[str]]:
        try:
            found = await asyncio.to_thread(self.client.sessions, str(interaction.guild.id))
        except HomeLabPiError:
            return []
        return [app_commands.Choice(name=f"{s['session']} #{s['channel']}"[:100],
                                    value=s["session"])
                for s in found if current.lower() in s["session"].lower()][:25]

    # -- /forget -------------------------------------------------------------------------------
    @app_commands.command(name="forget", description="Delete your recorded audio, transcripts "
                          "and index rows in this server.")
    @app_commands.guild_only()
    async def forget(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        guild, user = str(interaction.guild.id), str(interaction.user.id)
        discarded = False
        session = self.services.sessions.get(interaction.guild.id)
        if session is not None:  # the clip being recorded now, before it reaches the spool
            discarded = session.recorder.discard(interaction.user.id)
        purged = await asyncio.to_thread(self.services.spool.purge, lambda e: (
            e.metadata.get("guild") == guild and e.metadata.get("speaker-id") == user))
        report = await self._read(interaction, forget_speaker, self.client, guild, user,
                                  store=self.services.store)
        if report is None:
            return
        report.spooled_deleted = len(purged)
        report.discarded_open = discarded
        log.info("/forget for %s in %s: %s", user, guild, report.as_dict())
        await interaction.followup.send(replies.format_forget(report.as_dict()), ephemeral=True)
