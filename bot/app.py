"""The Discord bot process: `python -m bot`, or a thread inside `homelabpi up`.

The bot needs three gateway intents: guilds, voice_states (who is in which voice channel) and
members (display names for speakers, and which members are bots; privileged: enable "Server
Members Intent" in the developer portal). It does not read messages, so no message_content.
Slash commands are synced at start: globally, or to one guild at once when DISCORD_GUILD_ID is
set (global changes can take a while to show up in clients).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

import discord
from discord.ext import commands

from bot.cogs.memory import MemoryCog
from bot.cogs.recording import RecordingCog
from bot.services import Services, build_services
from homelabpi.settings import Settings

log = logging.getLogger(__name__)


def intents() -> discord.Intents:
    """Exactly what the bot uses (members is privileged; message content is not needed)."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.voice_states = True
    wanted.members = True
    return wanted


class HomeLabPiBot(commands.Bot):
    """discord.py client with the recording and memory cogs."""

    def __init__(self, services: Services, *, sync_guild: int | None = None) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=intents(),
                         help_command=None)
        self.services = services
        self.sync_guild = sync_guild

    async def setup_hook(self) -> None:
        await self.add_cog(RecordingCog(self, self.services))
        await self.add_cog(MemoryCog(self, self.services))
        if self.sync_guild:
            guild = discord.Object(id=self.sync_guild)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        else:
            synced = await self.tree.sync()
        log.info("synced %d slash commands%s", len(synced),
                 f" to guild {self.sync_guild}" if self.sync_guild else "")

    async def close(self) -> None:
        """Stop every recording (clips committed, nicknames restored) before logging out."""
        for session in list(self.services.sessions.values()):
            try:
                await session.stop("the bot is shutting down")
            except Exception:  # noqa: BLE001 - shut down the rest regardless
                log.exception("stopping a recording failed")
        await super().close()


def _token(token: str | None) -> str:
    token = token or os.environ.get("DISCORD_TOKEN", "")
    if not token:
        raise RuntimeError("DISCORD_TOKEN is not set; see docs/bot.md for creating the bot")
    return token


def _sync_guild() -> int | None:
    raw = os.environ.get("DISCORD_GUILD_ID", "").strip()
    return int(raw) if raw.isdigit() else None


async def serve(settings: Settings, gateway_url: str | None = None,
                token: str | None = None) -> None:
    """Run the bot until it is closed (the coroutine both entry points share)."""
    token = _token(token)
    services = build_services(settings, gateway_url)
    services.start()
    try:
        async with HomeLabPiBot(services, sync_guild=_sync_guild()) as bot:
            await bot.start(token)
    finally:
        services.stop()


def start_in_background(settings: Settings, gateway_url: str | None = None) -> threading.Thread:
    """Run the bot in a daemon thread with its own event loop (`homelabpi up`)."""
    token = _token(None)

    def main() -> None:
        try:
            asyncio.run(serve(settings, gateway_url, token))
        except discord.PrivilegedIntentsRequired:
            log.error("Discord refused the Server Members intent: enable it for the bot in the "
                      "developer portal (Bot → Privileged Gateway Intents); see docs/bot.md")
        except discord.LoginFailure:
            log.error("Discord rejected DISCORD_TOKEN; reset it in the developer portal")
        except Exception:  # noqa: BLE001 - the gateway keeps running without the bot
            log.exception("the Discord bot stopped")

    thread = threading.Thread(target=main, name="discord-bot", daemon=True)
    thread.start()
    log.info("Discord bot starting (reads via %s)", gateway_url or "in-process functions")
    return thread


def main() -> int:
    """`python -m bot`: the bot alone (in-process functions unless HOMELABPI_GATEWAY is set)."""
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        asyncio.run(serve(settings))
    except KeyboardInterrupt:
        pass
    except (RuntimeError, discord.LoginFailure, discord.PrivilegedIntentsRequired) as exc:
        log.error("%s", exc)
        return 1
    return 0
