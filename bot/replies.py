"""What the bot says: answers with citations, search hits, sessions, status, /forget reports.

Pure functions from the library's JSON to Discord message text, so the wording is tested without
Discord. Times are Discord timestamps (`<t:epoch:f>`): every reader sees them in their own time
zone, and the citation's ISO 8601 UTC time is exact to the second.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from homelabpi.transcripts import parse_time

LIMIT = 2000  # Discord's message length limit
NOT_FOUND = "I could not find that in the recordings."


def discord_time(iso: str, style: str = "f") -> str:
    """ISO 8601 UTC → `<t:epoch:style>` (f: date and time, T: time, R: relative)."""
    return f"<t:{int(parse_time(iso).timestamp())}:{style}>"


def quote(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def citation_line(c: Mapping[str, Any]) -> str:
    """— **Alice**, <t:…:f> in #lab: “I moved the NAS …”"""
    where = f" in #{c['channel']}" if c.get("channel") else ""
    return f"— **{c['speaker']}**, {discord_time(c['start'])}{where}: “{quote(c['text'])}”"


def format_answer(result: Mapping[str, Any], question: str, max_citations: int = 3) -> str:
    """The cited answer `Client.ask` returned, as one message."""
    lines = [f"> {quote(question, 200)}", ""]
    citations = list(result.get("citations") or [])
    if not citations:
        lines.append(result.get("answer") or NOT_FOUND)
        return clip_text("\n".join(lines))
    lines.append(f"**{quote(result.get('answer') or '', 900)}**")
    for c in citations[:max_citations]:
        lines.append(citation_line(c))
    if result.get("mode") == "passage":
        lines.append("-# best matching passage (no reader model installed)")
    return clip_text("\n".join(lines))


def format_hits(hits: Iterable[Mapping[str, Any]], text: str) -> str:
    hits = list(hits)
    if not hits:
        return f"No matches for “{quote(text, 100)}”."
    lines = [f"Matches for “{quote(text, 100)}”:"]
    for h in hits:
        lines.append(f"{discord_time(h['start'])} **{h['speaker']}**: {quote(h['text'], 200)} "
                     f"`{h['session']}`")
    return clip_text("\n".join(lines))


def format_sessions(sessions: Iterable[Mapping[str, Any]], limit: int = 10) -> str:
    sessions = list(sessions)
    if not sessions:
        return "No recorded sessions yet."
    lines = ["Recorded sessions, newest first:"]
    for s in sessions[:limit]:
        failed = f", {s['failed']} failed" if s.get("failed") else ""
        lines.append(f"`{s['session']}` {discord_time(s['started_at'])} → "
                     f"{discord_time(s['ended_at'], 't')} #{s['channel']}: "
                     f"{', '.join(s['speakers']) or 'nobody'} ({s['clips']} clips{failed})")
    if len(sessions) > limit:
        lines.append(f"… and {len(sessions) - limit} older")
    return clip_text("\n".join(lines))


def format_segment(seg: Mapping[str, Any]) -> str:
    """One live transcript line."""
    return f"{discord_time(seg['start'], 'T')} **{seg['speaker']}**: {quote(seg['text'], 1500)}"


RECEIVE_FIELDS = ("packets", "decrypt_errors", "dave_errors", "decode_errors", "malformed",
                  "lost", "concealed", "fec_recovered", "unknown_ssrc_dropped",
                  "internal_errors")


def format_status(sessions: Iterable[Mapping[str, Any]], upload: Mapping[str, Any]) -> str:
    """/status: each recording (speakers, counters) and the upload spool."""
    lines = []
    sessions = list(sessions)
    if not sessions:
        lines.append("Not recording.")
    for s in sessions:
        lines.append(f"🔴 Recording #{s['channel']} since {discord_time(s['since'], 'R')} "
                     f"(session `{s['session']}`)")
        recorded = s.get("recorded") or {}
        speakers = ", ".join(f"{name} ({n} clips)" for name, n in sorted(recorded.items()))
        lines.append(f"Recorded: {speakers or 'nobody yet'}")
        if s.get("recording"):
            lines.append(f"In the channel, recorded: {', '.join(s['recording'])}")
        if s.get("not_recorded"):
            lines.append(f"In the channel, not recorded (no consent): "
                         f"{', '.join(s['not_recorded'])}")
        rx = s.get("receive") or {}
        lines.append("Receive: " + ", ".join(f"{k} {rx.get(k, 0)}" for k in RECEIVE_FIELDS))
        rec = s.get("recorder") or {}
        lines.append(f"Clips: {rec.get('clips', 0)} cut, {rec.get('clips_too_short', 0)} too "
                     f"short; reconnects {s.get('reconnects', 0)}")
    last = f", last error: {upload['last_error']}" if upload.get("last_error") else ""
    lines.append(f"Upload spool: {upload.get('queued', 0)} queued, {upload.get('uploaded', 0)} "
                 f"uploaded, {upload.get('failures', 0)} failures{last}")
    return clip_text("\n".join(lines))


def format_forget(report: Mapping[str, Any]) -> str:
    """/forget's confirmation: what was removed, and whether anything remains."""
    lines = [f"Removed {report['transcripts_deleted']} transcript(s), "
             f"{report['audio_deleted']} audio clip(s) and {report['segments_before']} indexed "
             f"segment(s) from {len(report['sessions'])} session(s)."]
    if report.get("spooled_deleted"):
        lines.append(f"Also deleted {report['spooled_deleted']} clip(s) not yet uploaded.")
    if report.get("discarded_open"):
        lines.append("The clip being recorded right now was discarded.")
    if report.get("verified"):
        lines.append("Checked: the index holds no clips or segments of yours any more.")
    else:
        lines.append(f"⚠️ The index still lists {report['clips_remaining']} clip(s) and "
                     f"{report['segments_remaining']} segment(s) of yours; the index function "
                     "may be behind. Run /forget again in a minute.")
    lines.append("Your /consent setting is unchanged.")
    return clip_text("\n".join(lines))


def clip_text(text: str, limit: int = LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chunks(lines: Iterable[str], limit: int = LIMIT) -> list[str]:
    """Pack lines into messages of at most `limit` characters (a long line is cut)."""
    out: list[str] = []
    cur = ""
    for line in lines:
        line = clip_text(line, limit)
        if cur and len(cur) + 1 + len(line) > limit:
            out.append(cur)
            cur = line
        else:
            cur = f"{cur}\n{line}" if cur else line
    if cur:
        out.append(cur)
    return out
