"""Upload spool against a real LocalStore (+ outbox): outages, kill -9, restart, exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from bot_helpers import decode_clip

from bot.recorder import Member, Recorder
from bot.spool import Spool, Uploader, md5_file
from bot.voice.simclient import tone
from homelabpi.errors import BadInput, Unavailable
from homelabpi.store.local import LocalStore
from homelabpi.store.outbox import Outbox

REPO = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0


class FlakyStore:
    """A real LocalStore behind a switch: while `down`, every call raises Unavailable."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.down = False
        self.bucket = inner.bucket

    def _check(self) -> None:
        if self.down:
            raise Unavailable("store is down (test)")

    def put(self, key, data, **kw):
        self._check()
        return self.inner.put(key, data, **kw)

    def stat(self, key):
        self._check()
        return self.inner.stat(key)


def _record_clips(spool: Spool, n: int, fmt: str = "ogg") -> list[str]:
    """Record `n` one-second clips through the real recorder; return their keys."""
    keys: list[str] = []
    rec = Recorder(spool, guild_id="g-9", channel_id=5, channel_name="lab", self_user_id=99,
                   member_info=lambda uid: Member(uid, f"user{uid}"), session_id="s-9", fmt=fmt,
                   on_clip=lambda entry: keys.append(entry.key))
    for i in range(n):
        pcm = tone(300 + 100 * i, 1.0)
        start = T0 + 5 * i
        for j in range(0, len(pcm), 960):
            rec.write(i + 1, pcm[j:j + 960], start + j / 48000)
        rec.end(i + 1)
    assert len(keys) == n
    return keys


def _events_per_key(outbox_dir: Path) -> Counter:
    return Counter(json.loads(p.read_text())["key"] for p in Outbox(outbox_dir).pending())


def _assert_exactly_once(store: LocalStore, outbox_dir: Path, keys: list[str],
                         local_md5: dict[str, str]) -> None:
    stored = {o.key: o for o in store.list("audio/")}
    assert sorted(stored) == sorted(keys)
    for k in keys:
        assert stored[k].etag == local_md5[k]
        assert stored[k].metadata["session"] == "s-9"
    assert _events_per_key(outbox_dir) == Counter({k: 1 for k in keys})


def test_store_outage_during_recording_then_recovery(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", outbox_dir=tmp_path / "outbox")
    flaky = FlakyStore(store)
    spool = Spool(tmp_path / "spool")
    up = Uploader(spool, flaky, base_delay=1.0, max_delay=8.0, rng=lambda: 1.0)

    flaky.down = True
    keys = _record_clips(spool, 2)
    assert up.run_once() is False
    keys += _record_clips(spool, 1)  # recording carries on during the outage
    assert up.run_once() is False
    assert [up.next_delay() for _ in range(1)] == [2.0]
    for _ in range(5):
        up.run_once()
    assert up.next_delay() == 8.0  # capped
    assert len(spool) == 3 and list(store.list("audio/")) == []
    md5s = {e.key: e.md5 for e in spool.pending()}

    flaky.down = False
    assert up.run_once() is True
    assert len(spool) == 0 and up.stats.uploaded == 3 and up.stats.consecutive_failures == 0
    _assert_exactly_once(store, tmp_path / "outbox", keys, md5s)
    # Clips arrive intact: the stored object decodes like the recording.
    for k in keys:
        audio, rate = decode_clip(store.path_of(k))
        assert abs(len(audio) / rate - 1.0) < 0.05


def test_store_that_does_not_confirm_keeps_the_clip(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", outbox_dir=tmp_path / "outbox")

    class Lossy(FlakyStore):
        def put(self, key, data, **kw):
            return self.inner.put(key, b"truncated", **kw)

    spool = Spool(tmp_path / "spool")
    _record_clips(spool, 1)
    up = Uploader(spool, Lossy(store))
    assert up.run_once() is False
    assert up.stats.mismatches == 1 and len(spool) == 1
    assert Uploader(spool, store).run_once() is True
    assert len(spool) == 0


def test_rejected_clip_is_quarantined_not_lost(tmp_path: Path) -> None:
    class Rejecting(FlakyStore):
        def put(self, key, data, **kw):
            raise BadInput("no")

    store = LocalStore(tmp_path / "store")
    spool = Spool(tmp_path / "spool")
    _record_clips(spool, 1)
    up = Uploader(spool, Rejecting(store))
    assert up.run_once() is True
    assert len(spool) == 0 and up.stats.quarantined == 1
    failed = sorted(p.suffix for p in spool.failed.iterdir())
    assert failed == [".json", ".ogg"]


UPLOADER_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from homelabpi.store.local import LocalStore
    from bot.spool import Spool, Uploader

    spool_dir, store_dir, outbox_dir, mode, marker = sys.argv[1:]
    real = LocalStore(store_dir, outbox_dir=outbox_dir)

    class Stuck:
        bucket = real.bucket
        puts = 0
        def stat(self, key):
            return real.stat(key)
        def put(self, key, data, **kw):
            Stuck.puts += 1
            if mode == "during" and Stuck.puts == 2:
                data.read(100)          # half-way through sending the second clip
                Path(marker).write_text(key)
                time.sleep(3600)
            info = real.put(key, data, **kw)
            if mode == "after" and Stuck.puts == 2:
                Path(marker).write_text(key)  # stored, but not yet deleted locally
                time.sleep(3600)
            return info

    Uploader(Spool(spool_dir), Stuck()).run_once()
""")


@pytest.mark.parametrize("mode", ["during", "after"])
def test_uploader_killed_mid_upload_then_restarted(tmp_path: Path, mode: str) -> None:
    spool_dir, store_dir, outbox_dir = tmp_path / "spool", tmp_path / "store", tmp_path / "outbox"
    spool = Spool(spool_dir)
    keys = _record_clips(spool, 3)
    md5s = {e.key: e.md5 for e in spool.pending()}
    script = tmp_path / "uploader.py"
    script.write_text(UPLOADER_SCRIPT)
    marker = tmp_path / "marker"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(script), str(spool_dir), str(store_dir),
                             str(outbox_dir), mode, str(marker)], cwd=REPO, env=env)
    try:
        for _ in range(600):  # liveness guard only: fails if the child never gets there
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), f"uploader exited early with {proc.poll()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    store = LocalStore(store_dir, outbox_dir=outbox_dir)
    in_store = {o.key for o in store.list("audio/")}
    assert len(in_store) == (1 if mode == "during" else 2)
    assert len(spool) == 2  # the second clip is still spooled in both cases

    up = Uploader(Spool(spool_dir), store)  # the restarted bot
    assert up.run_once() is True
    assert len(Spool(spool_dir)) == 0
    assert up.stats.already_present == (1 if mode == "after" else 0)
    _assert_exactly_once(store, outbox_dir, keys, md5s)


RECORDER_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from bot.recorder import Member, Recorder
    from bot.spool import Spool
    from bot.voice.simclient import tone

    spool_dir, fmt, marker = sys.argv[1:]
    rec = Recorder(Spool(spool_dir), guild_id="g-9", channel_id=5, channel_name="lab",
                   self_user_id=99, member_info=lambda uid: Member(uid, "Ann"),
                   session_id="s-9", fmt=fmt)
    pcm = tone(440, 30.0)
    for j in range(0, len(pcm), 960):
        rec.write(1, pcm[j:j + 960], 1_800_000_000.0 + j / 48000)
    Path(marker).write_text("recording")
    time.sleep(3600)
""")


@pytest.mark.parametrize("fmt", ["ogg", "wav"])
def test_recording_interrupted_by_a_crash_is_salvaged(tmp_path: Path, fmt: str) -> None:
    script = tmp_path / "rec.py"
    script.write_text(RECORDER_SCRIPT)
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "spool"), fmt,
                             str(marker)], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        for _ in range(600):
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), f"recorder exited early with {proc.poll()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    spool = Spool(tmp_path / "spool")
    assert len(spool) == 0
    assert spool.recover() == 1
    (entry,) = spool.pending()
    assert entry.metadata["speaker"] == "Ann" and entry.key.endswith("." + fmt)
    assert md5_file(entry.path)[0] == entry.md5
    audio, rate = decode_clip(entry.path)
    assert len(audio) / rate > 5.0  # most of what was recorded before the crash
    assert np.sqrt((audio ** 2).mean()) > 0.1


def test_background_uploader_thread_drains_new_clips(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", outbox_dir=tmp_path / "outbox")
    spool = Spool(tmp_path / "spool")
    up = Uploader(spool, store)
    up.start()
    try:
        keys = _record_clips(spool, 2)
        for _ in range(300):  # liveness guard only
            if len(spool) == 0:
                break
            time.sleep(0.05)
    finally:
        up.stop()
    assert len(spool) == 0
    assert sorted(o.key for o in store.list("audio/")) == sorted(keys)
