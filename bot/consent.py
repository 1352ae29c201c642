"""Who may be recorded, per guild: opt-in consent and the guild's recording policy.

Consent is asked for on the socket-reader thread (via `Recorder.wants`, cached there for a few
seconds) and changed from slash commands on the event loop, so one small SQLite file with a lock
serves both; it lives under the data directory so it survives restarts and upgrades:
`<HOMELABPI_DATA_DIR>/bot/state.sqlite3`.

Policy: a guild requires opt-in by default (`require_consent` ON). Then only members who ran
`/consent on` in that guild are recorded; everyone else is never decrypted, never written.
A guild admin can turn the requirement off (everyone in the channel is recorded after the
on-join notice); bots are never recorded either way (the recorder refuses them).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS consent (
    guild_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    consented  INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);
CREATE TABLE IF NOT EXISTS guild_settings (
    guild_id        TEXT PRIMARY KEY,
    require_consent INTEGER NOT NULL DEFAULT 1,
    updated_at      REAL NOT NULL
);
"""


@dataclass(frozen=True)
class GuildSettings:
    """A guild's recording policy (defaults apply until an admin changes them)."""

    require_consent: bool = True


class BotState:
    """The bot's own small persistent state: consent and per-guild settings."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a consent change must survive a crash
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: Path | str) -> BotState:
        """The state file the bot uses: `<data_dir>/bot/state.sqlite3`."""
        return cls(Path(data_dir) / "bot" / "state.sqlite3")

    # -- consent -------------------------------------------------------------------------------
    def set_consent(self, guild_id: int | str, user_id: int | str, consented: bool) -> None:
        """Record a member's choice (`/consent on|off`); the latest choice wins."""
        with self._lock:
            self._db.execute(
                "INSERT INTO consent (guild_id, user_id, consented, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT (guild_id, user_id) DO UPDATE SET consented = excluded.consented, "
                "updated_at = excluded.updated_at",
                (str(guild_id), str(user_id), int(bool(consented)), time.time()))

    def has_consent(self, guild_id: int | str, user_id: int | str) -> bool:
        """Did this member opt in, in this guild? (Never asked = no.)"""
        with self._lock:
            row = self._db.execute("SELECT consented FROM consent WHERE guild_id = ? AND "
                                   "user_id = ?", (str(guild_id), str(user_id))).fetchone()
        return bool(row and row[0])

    def consenting(self, guild_id: int | str) -> set[int]:
        """Everyone who opted in, in this guild (for the join notice's head count)."""
        with self._lock:
            rows = self._db.execute("SELECT user_id FROM consent WHERE guild_id = ? AND "
                                    "consented = 1", (str(guild_id),)).fetchall()
        return {int(r[0]) for r in rows}

    # -- guild settings ------------------------------------------------------------------------
    def guild_settings(self, guild_id: int | str) -> GuildSettings:
        with self._lock:
            row = self._db.execute("SELECT require_consent FROM guild_settings WHERE "
                                   "guild_id = ?", (str(guild_id),)).fetchone()
        return GuildSettings() if row is None else GuildSettings(require_consent=bool(row[0]))

    def set_require_consent(self, guild_id: int | str, required: bool) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO guild_settings (guild_id, require_consent, updated_at) "
                "VALUES (?,?,?) ON CONFLICT (guild_id) DO UPDATE SET "
                "require_consent = excluded.require_consent, updated_at = excluded.updated_at",
                (str(guild_id), int(bool(required)), time.time()))

    # -- the recorder's hook -------------------------------------------------------------------
    def may_record(self, guild_id: int | str, user_id: int | str) -> bool:
        """The consent hook: opted in, or the guild does not require opt-in."""
        if not self.guild_settings(guild_id).require_consent:
            return True
        return self.has_consent(guild_id, user_id)

    def close(self) -> None:
        with self._lock:
            self._db.close()
