"""What the answer function reads besides answers: sessions, transcripts, clip status, the
query log and a speaker's clips. Every function takes open read-only shard connections of one
guild, so the isolation `Runtime.shard_paths` gives holds here too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

from homelabpi.answering import retrieval
from homelabpi.errors import NotFound
from homelabpi.keys import validate_id


def sessions(conns: list[sqlite3.Connection]) -> list[dict]:
    """Sessions, newest first, merged across month shards (a session can span two)."""
    sessions: dict[str, dict] = {}
    for conn in conns:
        for row in conn.execute(
                "SELECT se.id, ch.name, se.started_at, se.ended_at, "
                "(SELECT group_concat(DISTINCT sp.name) FROM segment s JOIN speaker sp "
                " ON sp.id = s.speaker_id WHERE s.session_id = se.id), "
                "(SELECT count(*) FROM clip c WHERE c.session_id = se.id), "
                "(SELECT count(*) FROM clip c WHERE c.session_id = se.id AND c.status != 'ok'), "
                "(SELECT count(*) FROM segment s WHERE s.session_id = se.id) "
                "FROM session se JOIN channel ch ON ch.id = se.channel_id"):
            s = sessions.setdefault(row[0], {"session": row[0], "channel": row[1],
                                             "started_at": row[2], "ended_at": row[3],
                                             "speakers": set(), "clips": 0, "failed": 0,
                                             "segments": 0})
            s["started_at"], s["ended_at"] = min(s["started_at"], row[2]), max(s["ended_at"],
                                                                                 row[3])
            s["speakers"] |= set((row[4] or "").split(",")) - {""}
            s["clips"] += row[5]
            s["failed"] += row[6]
            s["segments"] += row[7]
    out = sorted(sessions.values(), key=lambda s: s["started_at"], reverse=True)
    for s in out:
        s["speakers"] = sorted(s["speakers"])
        s["started_at"] = retrieval.iso_epoch(s["started_at"])
        s["ended_at"] = retrieval.iso_epoch(s["ended_at"])
    return out


def transcript(session: str, guilds: list[str],
               guild_readers: Callable[[str], AbstractContextManager[list[sqlite3.Connection]]]
               ) -> dict:
    """A session's segments across speakers in time order, from the first guild that has it.

    `guild_readers` lends a guild's shards, so a session id given without its guild (the CLI
    allows that) is looked for one guild at a time, never in two guilds at once.
    """
    validate_id(session, "session")
    segments: list[tuple[float, int, dict]] = []
    for guild in guilds:
        started: list[float] = []
        with guild_readers(guild) as conns:
            for conn in conns:
                started += [r[0] for r in conn.execute(
                    "SELECT started_at FROM session WHERE id = ?", (session,))]
                for row in conn.execute(retrieval.SELECT + " WHERE s.session_id = ?", (session,)):
                    seg = retrieval.seg(row)
                    segments.append((seg.start, seg.id, {
                        "speaker": seg.speaker, "start": retrieval.iso_epoch(seg.start),
                        "end": retrieval.iso_epoch(seg.end), "text": seg.text,
                        "words": seg.words}))
        if segments:
            segments.sort(key=lambda s: s[:2])
            return {"session": session, "guild": guild,
                    "started_at": retrieval.iso_epoch(min(started)),
                    "segments": [s[2] for s in segments]}
    raise NotFound(f"no session {session!r}; list sessions with 'homelabpi sessions --guild ID'")


def clip_status(conns: list[sqlite3.Connection], keys: list[str]) -> dict:
    """Index state of transcripts by key: how `ingest` knows a clip is done, or failed."""
    found: dict[str, dict] = {}
    for conn in conns:
        for k in keys:
            row = conn.execute("SELECT c.status, c.error, (SELECT count(*) FROM segment s WHERE "
                               "s.clip_id = c.id) FROM clip c WHERE c.key = ?", (k,)).fetchone()
            if row:
                found[k] = {"status": row[0], "error": row[1], "segments": row[2]}
    return found


def query_log(conns: list[sqlite3.Connection], limit: int) -> list[dict]:
    """The query log, newest first, with how each question was understood (`resolved`)."""
    out = []
    for conn in conns:
        try:
            rows = conn.execute(
                "SELECT id, question, answer, confidence, citations, mode, asker, asked_at, "
                "latency_ms, thread, resolved FROM query ORDER BY asked_at DESC LIMIT ?",
                (limit,))
        except sqlite3.OperationalError:  # a v1 shard: no threads logged there
            rows = conn.execute(
                "SELECT id, question, answer, confidence, citations, mode, asker, asked_at, "
                "latency_ms, '', '{}' FROM query ORDER BY asked_at DESC LIMIT ?", (limit,))
        for r in rows:
            out.append({"id": r[0], "question": r[1], "answer": r[2], "confidence": r[3],
                        "citations": json.loads(r[4] or "[]"), "mode": r[5], "asker": r[6],
                        "asked_at": r[7], "latency_ms": r[8], "thread": r[9],
                        "resolved": json.loads(r[10] or "{}")})
    out.sort(key=lambda d: d["asked_at"], reverse=True)
    for d in out:
        d["asked_at"] = retrieval.iso_epoch(d["asked_at"])
    return out[:limit]


def speaker_clips(conns: list[sqlite3.Connection], speaker_id: str) -> dict:
    """A speaker's clips by Discord user id (audio + transcript keys): what /forget deletes."""
    clips, segments = [], 0
    for conn in conns:
        for r in conn.execute(
                "SELECT c.key, c.audio_key, c.session_id, c.started_at, c.status FROM clip c "
                "JOIN speaker sp ON sp.id = c.speaker_id WHERE sp.discord_id = ? "
                "ORDER BY c.started_at", (speaker_id,)):
            clips.append({"transcript": r[0], "audio": r[1], "session": r[2],
                          "started_at": retrieval.iso_epoch(r[3]), "status": r[4]})
        segments += conn.execute(
            "SELECT count(*) FROM segment s JOIN speaker sp ON sp.id = s.speaker_id "
            "WHERE sp.discord_id = ?", (speaker_id,)).fetchone()[0]
    return {"clips": clips, "segments": segments}
