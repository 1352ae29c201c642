"""Forget a speaker: delete their audio and transcripts from the store, and so their index rows.

The store is the source of truth and the index follows it, so forgetting is deleting objects:
deleting a transcript emits `s3:ObjectRemoved`, which the index function already turns into
"remove this clip's rows". Steps, for one guild and one Discord user id:

1. Ask the answer function (op `clips`) which clips the index holds for that speaker id.
2. Sweep recent `audio/<guild>/` objects for clips of that speaker the index has not seen yet
   (uploaded, not yet transcribed: metadata `speaker-id`). Older audio is always indexed, since
   even a failed transcription leaves a transcript, so the sweep looks back `sweep_hours` only.
3. Delete audio first (nothing can be transcribed again), then transcripts.
4. Deliver the events (embedded default: the index runs here and now; with a gateway they are
   queued) and ask the answer function again until no clip or segment of the speaker remains,
   or `wait` seconds pass. The report says which.

Not covered: query logs (`queries/`) keep questions and the citations they were answered with,
and the speaker's name row stays in the index (it has no speech in it).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import unquote

from homelabpi.client import Client
from homelabpi.errors import NotFound
from homelabpi.keys import ClipKey, validate_id
from homelabpi.store import ObjectStore

log = logging.getLogger(__name__)


@dataclass
class ForgetReport:
    """What /forget removed and whether the index confirms it."""

    guild: str
    speaker_id: str
    sessions: list[str] = field(default_factory=list)
    clips_found: int = 0
    segments_before: int = 0
    audio_deleted: int = 0
    transcripts_deleted: int = 0
    unindexed_audio: int = 0
    clips_remaining: int = 0
    segments_remaining: int = 0
    spooled_deleted: int = 0  # filled in by the bot: clips still in its upload spool
    discarded_open: bool = False  # filled in by the bot: the clip being recorded

    @property
    def verified(self) -> bool:
        return self.clips_remaining == 0 and self.segments_remaining == 0

    def as_dict(self) -> dict:
        return asdict(self) | {"verified": self.verified}


def speaker_clips(client: Client, guild: str, speaker_id: str) -> dict:
    """The answer function's `clips` op: {"clips": [{transcript, audio, ...}], "segments": n}."""
    body = json.dumps({"op": "clips", "guild": guild, "speaker_id": speaker_id}).encode()
    return client.call("answer", body)


def forget_speaker(client: Client, guild: str, speaker_id: str, *,
                   store: ObjectStore | None = None, wait: float = 60.0, poll: float = 0.5,
                   sweep_hours: float = 24.0) -> ForgetReport:
    """Delete everything stored of one speaker in one guild and check the index forgot it."""
    guild = validate_id(str(guild), "guild")
    speaker_id = validate_id(str(speaker_id), "speaker id")
    store = store if store is not None else client.runtime.store
    report = ForgetReport(guild, speaker_id)
    client.deliver_events()  # index what is pending first, so the lookup below sees it

    found = speaker_clips(client, guild, speaker_id)
    report.clips_found = len(found["clips"])
    report.segments_before = int(found["segments"])
    audio = {c["audio"] for c in found["clips"] if str(c.get("audio", "")).startswith("audio/")}
    transcripts = {c["transcript"] for c in found["clips"]}
    sessions = {c["session"] for c in found["clips"]}
    for key in _unindexed_audio(store, guild, speaker_id, sweep_hours) - audio:
        report.unindexed_audio += 1
        audio.add(key)
        transcripts.add(ClipKey.parse(key).transcript)  # transcribed but not yet indexed
        sessions.add(ClipKey.parse(key).session)
    report.sessions = sorted(sessions)

    for key in sorted(audio):
        if _delete(store, key):
            report.audio_deleted += 1
    for key in sorted(transcripts):
        if _delete(store, key):
            report.transcripts_deleted += 1

    deadline = time.monotonic() + wait
    while True:
        client.deliver_events()
        left = speaker_clips(client, guild, speaker_id)
        report.clips_remaining = len(left["clips"])
        report.segments_remaining = int(left["segments"])
        if report.verified or time.monotonic() >= deadline:
            break
        time.sleep(poll)
    log.info("forgot speaker %s in guild %s: %d audio, %d transcripts, %d segments; %s",
             speaker_id, guild, report.audio_deleted, report.transcripts_deleted,
             report.segments_before, "verified" if report.verified else "rows remain")
    return report


def _unindexed_audio(store: ObjectStore, guild: str, speaker_id: str,
                     sweep_hours: float) -> set[str]:
    """Recent audio objects whose metadata names the speaker (a listing may lack metadata)."""
    since = time.time() - sweep_hours * 3600
    keys = set()
    for obj in store.list(f"audio/{guild}/"):
        if obj.modified and obj.modified < since:
            continue
        meta = obj.metadata
        if not meta:
            try:
                meta = store.stat(obj.key).metadata
            except NotFound:
                continue
        if unquote(meta.get("speaker-id", "")) == speaker_id:
            keys.add(obj.key)
    return keys


def _delete(store: ObjectStore, key: str) -> bool:
    """Delete if present; True when something was there."""
    try:
        store.stat(key)
    except NotFound:
        return False
    store.delete(key)
    return True
