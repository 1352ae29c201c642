"""Recorder: cutting rules, absolute placement, streaming to disk, who may be recorded."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from bot_helpers import decode_clip, dominant_hz

from bot.recorder import Member, Recorder
from bot.spool import Spool
from bot.voice.simclient import tone

T0 = 1_800_000_000.0
FRAME = 960
PEOPLE = {1: Member(1, "Ann"), 2: Member(2, "Ben"), 3: Member(3, "Bot", bot=True),
          4: Member(4, "Me", bot=True), 5: Member(5, "Shy")}


def _rec(tmp: Path, **kw) -> Recorder:
    kw.setdefault("member_info", PEOPLE.get)
    return Recorder(Spool(tmp), guild_id="g", channel_id=9, channel_name="voice",
                    self_user_id=4, session_id="s-r", **kw)


def _send(rec: Recorder, user: int, pcm: np.ndarray, at: float) -> float:
    """Feed 20 ms frames the way the receiver does; returns the end time."""
    for i in range(0, len(pcm), FRAME):
        rec.write(user, pcm[i:i + FRAME], at + i / 48000)
    return at + len(pcm) / 48000


def _starts(rec: Recorder) -> list[float]:
    return sorted(datetime.strptime(e.metadata["started-at"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
                  for e in rec.spool.pending())


def test_quiet_frames_shorter_than_the_cut_stay_in_one_clip(tmp_path: Path) -> None:
    rec = _rec(tmp_path)
    t = _send(rec, 1, tone(440, 1.0), T0)
    t = _send(rec, 1, np.zeros(int(1.4 * 48000), np.int16), t)
    _send(rec, 1, tone(440, 1.0), t)
    rec.close()
    (clip,) = rec.spool.pending()
    audio, rate = decode_clip(clip.path)
    assert abs(len(audio) / rate - 3.4) < 0.05
    middle = audio[int(1.2 * rate):int(2.2 * rate)]
    assert np.sqrt((middle ** 2).mean()) < 0.01


def test_silence_of_the_cut_length_splits_and_trailing_silence_is_dropped(tmp_path: Path) -> None:
    rec = _rec(tmp_path)
    t = _send(rec, 1, tone(440, 1.0), T0)
    t = _send(rec, 1, np.zeros(int(1.6 * 48000), np.int16), t)
    _send(rec, 1, tone(440, 1.0), t)
    rec.close()
    clips = rec.spool.pending()
    assert len(clips) == 2 and rec.stats.cut_silence == 1
    for c in clips:
        audio, rate = decode_clip(c.path)
        assert abs(len(audio) / rate - 1.0) < 0.05
    a, b = _starts(rec)
    assert abs(a - T0) < 0.001 and abs(b - (T0 + 2.6)) < 0.001


def test_a_pause_without_packets_is_placed_by_absolute_time(tmp_path: Path) -> None:
    rec = _rec(tmp_path)
    _send(rec, 1, tone(440, 1.0), T0)
    _send(rec, 1, tone(880, 1.0), T0 + 2.0)  # 1 s with no packets at all (client stopped sending)
    rec.close()
    (clip,) = rec.spool.pending()
    audio, rate = decode_clip(clip.path)
    assert abs(len(audio) / rate - 3.0) < 0.05
    assert np.sqrt((audio[int(1.1 * rate):int(1.9 * rate)] ** 2).mean()) < 0.01
    assert abs(dominant_hz(audio[int(2.05 * rate):int(2.95 * rate)], rate) - 880) < 5


def test_no_packets_for_the_cut_length_closes_on_tick(tmp_path: Path) -> None:
    rec = _rec(tmp_path)
    end = _send(rec, 1, tone(440, 1.0), T0)
    rec.tick(end + 1.0)
    assert rec.spool.pending() == []
    rec.tick(end + 2.1)
    assert len(rec.spool.pending()) == 1


def test_long_speech_is_cut_every_60s_without_losing_time(tmp_path: Path) -> None:
    rec = _rec(tmp_path, fmt="wav")
    _send(rec, 2, tone(300, 130.0, amplitude=0.2), T0)
    rec.close()
    clips = sorted(rec.spool.pending(), key=lambda e: e.metadata["started-at"])
    durations = [len(decode_clip(c.path)[0]) / 48000 for c in clips]
    assert [round(d, 2) for d in durations] == [60.0, 60.0, 10.0]
    assert rec.stats.cut_max == 2
    starts = _starts(rec)
    assert [round(s - T0, 3) for s in starts] == [0.0, 60.0, 120.0]
    assert all(c.key.endswith(".wav") and c.content_type == "audio/wav" for c in clips)


def test_clip_is_streamed_to_disk_while_recording(tmp_path: Path) -> None:
    rec = _rec(tmp_path, fmt="wav")
    _send(rec, 1, tone(440, 10.0), T0)
    (open_file,) = [p for p in (tmp_path / "tmp").iterdir() if p.suffix == ".wav"]
    # On disk before the clip is closed (less the writer's small I/O buffer).
    assert open_file.stat().st_size >= 9 * 48000 * 2
    assert (tmp_path / "tmp" / (open_file.stem + ".open.json")).exists()
    rec.close()
    assert not list((tmp_path / "tmp").iterdir())


def test_bots_ourselves_and_refusers_are_never_recorded(tmp_path: Path) -> None:
    allowed = {1, 2, 3, 4}  # the consent hook refuses 5 (and is never asked about bots)
    asked: list[int] = []

    def consent(uid: int) -> bool:
        asked.append(uid)
        return uid in allowed

    rec = _rec(tmp_path, consent=consent)
    for uid in (1, 3, 4, 5, 77):  # 77 is not a member we can resolve
        _send(rec, uid, tone(440, 0.5), T0)
    rec.close()
    assert [c.metadata["speaker-id"] for c in rec.spool.pending()] == ["1"]
    assert not rec.wants(3) and not rec.wants(4) and not rec.wants(5)
    assert 3 not in asked and 4 not in asked


def test_consent_is_rechecked_after_the_cache_ttl(tmp_path: Path) -> None:
    now = [T0]
    ok = {1: True}
    rec = _rec(tmp_path, consent=lambda uid: ok[uid], wants_ttl=5.0, clock=lambda: now[0])
    assert rec.wants(1)
    ok[1] = False
    assert rec.wants(1)  # cached
    now[0] += 6
    assert not rec.wants(1)


def test_a_blip_shorter_than_min_voiced_is_discarded(tmp_path: Path) -> None:
    rec = _rec(tmp_path)
    _send(rec, 1, tone(440, 0.06), T0)
    rec.close()
    assert rec.spool.pending() == [] and rec.stats.clips_too_short == 1
    assert not list((tmp_path / "tmp").iterdir())


def test_withdrawn_consent_discards_the_open_clip(tmp_path: Path) -> None:
    now = [T0]
    ok = {1: True}
    rec = _rec(tmp_path, consent=lambda uid: ok[uid], wants_ttl=0.0, clock=lambda: now[0])
    _send(rec, 1, tone(440, 1.0), T0)
    ok[1] = False
    now[0] += 1
    _send(rec, 1, tone(440, 1.0), T0 + 1.0)
    rec.close()
    assert rec.spool.pending() == []
    assert not list((tmp_path / "tmp").iterdir())
