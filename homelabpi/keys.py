"""Object keys: the one layout every part writes and reads, and the check every key passes.

    audio/<guild>/<session>/<clip>.<ext>         a recording (bot clip or ingested file)
    transcripts/<guild>/<session>/<clip>.json    its transcript (or a subtitle file's cues)
    queries/<guild>/<yyyy-mm>/<query>.json       one asked question and its answer
    index/<guild>/<yyyy-mm>.sqlite3              a published index shard (cluster)
    models/<name>/...                            speech and reader models (cluster)

Names (speaker, channel) never appear in keys: they travel as object metadata, so a hostile
display name cannot become a hostile path.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from homelabpi.errors import BadInput

PREFIXES = ("audio/", "transcripts/", "queries/", "index/", "models/")
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_KEY_BYTES = 1024


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is safe to use as a store path, else raise BadInput."""
    if not isinstance(key, str) or not key:
        raise BadInput("object key is empty; expected e.g. 'audio/<guild>/<session>/<clip>.ogg'")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise BadInput(f"object key is longer than {MAX_KEY_BYTES} bytes: {key[:60]!r}...")
    if _CONTROL.search(key):
        raise BadInput(f"object key {key!r} contains a control character")
    if key.startswith("/") or key.startswith("\\") or re.match(r"^[A-Za-z]:", key):
        raise BadInput(f"object key {key!r} is an absolute path; keys are relative, like 'audio/…'")
    if "\\" in key:
        raise BadInput(f"object key {key!r} contains a backslash")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BadInput(f"object key {key!r} has an empty, '.' or '..' part")
    return key


def validate_id(value: str, what: str) -> str:
    """Ids (guild, session, clip) become key parts, so they are held to a strict alphabet."""
    value = str(value).strip()
    if not _PART.match(value):
        raise BadInput(
            f"{what} {value!r} is not a valid id: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def new_id(prefix: str, when: datetime | None = None) -> str:
    """Sortable, collision-resistant ids such as `s-20261124T124100-3f9a1c`."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return f"{prefix}-{when:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class ClipKey:
    """The parts shared by a clip's audio key and its transcript key."""

    guild: str
    session: str
    clip: str

    @classmethod
    def parse(cls, key: str) -> ClipKey:
        validate_key(key)
        parts = key.split("/")
        if len(parts) != 4 or parts[0] not in ("audio", "transcripts"):
            raise BadInput(
                f"object key {key!r} is not a clip key; expected "
                "'audio/<guild>/<session>/<clip>.<ext>' or "
                "'transcripts/<guild>/<session>/<clip>.json'"
            )
        stem = parts[3].rsplit(".", 1)[0]
        return cls(
            validate_id(parts[1], "guild"),
            validate_id(parts[2], "session"),
            validate_id(stem, "clip"),
        )

    def audio(self, ext: str) -> str:
        ext = ext.lower().lstrip(".")
        if not re.fullmatch(r"[a-z0-9]{1,8}", ext):
            raise BadInput(f"audio extension {ext!r} is not a plain file extension")
        return f"audio/{self.guild}/{self.session}/{self.clip}.{ext}"

    @property
    def transcript(self) -> str:
        return f"transcripts/{self.guild}/{self.session}/{self.clip}.json"


def query_key(guild: str, query_id: str, when: datetime) -> str:
    guild, query_id = validate_id(guild, "guild"), validate_id(query_id, "query")
    return f"queries/{guild}/{when:%Y-%m}/{query_id}.json"


def shard_key(guild: str, name: str) -> str:
    """Where shard `name` (`yyyy-mm` or `yyyy-mm.<part>`) of `guild` is published."""
    return f"index/{validate_id(guild, 'guild')}/{name}.sqlite3"

