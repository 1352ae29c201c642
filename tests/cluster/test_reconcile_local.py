"""The reconciler on the embedded default: its bound, removals, and the timer inside `up`.

The store here emits no events at all (no outbox): every one is "lost", so whatever ends up
indexed was found and re-driven by the reconciler.
"""

from __future__ import annotations

import time

import pytest
from noise_clips import noise_wav

from homelabpi.reconcile import Timer, in_process, missing_from_index, reconcile
from homelabpi.runtime import Runtime
from homelabpi.settings import Settings
from homelabpi.store.local import LocalStore


@pytest.fixture()
def rt(tmp_path):
    settings = Settings(data_dir=tmp_path, embeddings=False)
    runtime = Runtime(settings, store=LocalStore(settings.store_dir, outbox_dir=None))
    yield runtime
    runtime.close()


def _put_clips(rt: Runtime, n: int) -> list[str]:
    keys = []
    for i in range(n):
        key = f"audio/g1/s1/c-{i}.wav"
        rt.store.put(key, noise_wav(i, 8000), content_type="audio/wav",
                     metadata={"speaker": "Ana", "channel": "general", "source": "bot",
                               "started-at": f"2026-11-24T12:00:{i:02d}.000Z"})
        keys.append(key)
    return keys


def _indexed(rt: Runtime) -> list[str]:
    with rt.guild_readers("g1") as conns:
        return sorted(k for c in conns for (k,) in c.execute("SELECT key FROM clip"))


def test_a_run_is_bounded_and_the_next_one_finishes(rt):
    _put_clips(rt, 4)
    call = in_process(rt)
    first = reconcile(rt, call, limit=3)
    # Left: one clip to transcribe and the three new transcripts to index.
    assert len(first.transcribed) == 3 and first.indexed == [] and first.left == 4
    second = reconcile(rt, call, limit=50)
    assert len(second.transcribed) == 1 and len(second.indexed) == 4 and second.left == 0
    assert _indexed(rt) == [f"transcripts/g1/s1/c-{i}.json" for i in range(4)]
    third = reconcile(rt, call)
    assert (third.transcribed, third.indexed, third.removed) == ([], [], [])


def test_a_deleted_transcript_leaves_the_index(rt):
    _put_clips(rt, 2)
    call = in_process(rt)
    reconcile(rt, call)
    rt.store.delete("transcripts/g1/s1/c-0.json")
    rt.store.delete("audio/g1/s1/c-0.wav")
    report = reconcile(rt, call)
    assert report.removed == ["transcripts/g1/s1/c-0.json"]
    assert _indexed(rt) == ["transcripts/g1/s1/c-1.json"]
    assert missing_from_index(rt) == []


def test_a_failing_call_is_reported_not_hidden(rt):
    _put_clips(rt, 1)
    report = reconcile(rt, lambda function, body: 502)
    assert report.failed == [{"key": "audio/g1/s1/c-0.wav", "function": "transcribe",
                              "status": 502}]
    assert report.transcribed == []


def test_up_runs_the_reconciler_on_a_timer(rt):
    _put_clips(rt, 2)
    timer = Timer(rt, interval=0.05, limit=50)
    timer.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_indexed(rt)) < 2:
            time.sleep(0.1)
    finally:
        timer.stopping.set()
        timer.join(60)
    assert _indexed(rt) == ["transcripts/g1/s1/c-0.json", "transcripts/g1/s1/c-1.json"]
    assert timer.runs >= 1


def test_server_starts_the_timer_unless_disabled(tmp_path, monkeypatch):
    from homelabpi import server as server_mod

    for seconds, expected in ((300.0, True), (0.0, False)):
        settings = Settings(data_dir=tmp_path / str(seconds), bind="127.0.0.1:0",
                            reconcile_seconds=seconds)
        srv = server_mod.Server(settings)
        try:
            assert (srv.reconciler is not None) is expected
            if expected:
                assert srv.reconciler.interval == 300.0
        finally:
            srv.queue.close()
            server_mod.install(None)
