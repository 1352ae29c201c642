"""The local store: a bucket on disk, with MinIO-shaped events in a durable outbox."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time

import pytest

from homelabpi.errors import BadInput, NotFound
from homelabpi.events import make_record, parse_events
from homelabpi.store.local import LocalStore


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "store", outbox_dir=tmp_path / "outbox")


def collect(store):
    sent = []
    store.outbox.deliver(lambda fn, body: sent.append((fn, parse_events(body)[0])), store)
    return sent


def test_put_get_stat_list_delete(store):
    info = store.put("audio/1/s/c.ogg", b"hello", content_type="audio/ogg",
                     metadata={"Speaker": "Bob"})
    assert info.etag == hashlib.md5(b"hello").hexdigest() and info.size == 5
    assert store.get("audio/1/s/c.ogg") == b"hello"
    stat = store.stat("audio/1/s/c.ogg")
    assert stat.metadata == {"speaker": "Bob"} and stat.content_type == "audio/ogg"
    store.put("transcripts/1/s/c.json", io.BytesIO(b"{}"))
    assert [o.key for o in store.list()] == ["audio/1/s/c.ogg", "transcripts/1/s/c.json"]
    assert [o.key for o in store.list("transcripts/")] == ["transcripts/1/s/c.json"]
    store.delete("audio/1/s/c.ogg")
    store.delete("audio/1/s/c.ogg")  # already gone: no error
    with pytest.raises(NotFound):
        store.get("audio/1/s/c.ogg")
    with pytest.raises(NotFound):
        store.stat("audio/1/s/c.ogg")


def test_hostile_keys_never_touch_disk(store, tmp_path):
    for key in ("../escape", "/abs", "audio/../../x"):
        with pytest.raises(BadInput):
            store.put(key, b"x")
    assert not (tmp_path / "escape").exists()
    assert len(store.outbox) == 0


def test_events_are_minio_records_in_order(store):
    store.put("audio/1/s/a.ogg", b"a", metadata={"speaker": "Bob"})
    store.put("transcripts/1/s/a.json", b"{}")
    store.put("index/1/2026-11.sqlite3", b"db")  # nothing consumes these
    store.delete("transcripts/1/s/a.json")
    sent = collect(store)
    # The transcript was deleted before delivery: its creation is superseded, the removal is not.
    assert [(fn, ev.key, ev.name) for fn, ev in sent] == [
        ("transcribe", "audio/1/s/a.ogg", "s3:ObjectCreated:Put"),
        ("index", "transcripts/1/s/a.json", "s3:ObjectRemoved:Delete"),
    ]
    assert sent[0][1].etag == hashlib.md5(b"a").hexdigest()
    assert len(store.outbox) == 0


def test_events_for_live_objects_keep_their_order(store):
    store.put("audio/1/s/a.ogg", b"a")
    store.put("transcripts/1/s/a.json", b"{}")
    store.put("queries/1/2026-11/q.json", b"{}")
    assert [ev.key for _, ev in collect(store)] == [
        "audio/1/s/a.ogg", "transcripts/1/s/a.json", "queries/1/2026-11/q.json"]


def test_failed_delivery_keeps_the_event(store):
    store.put("audio/1/s/a.ogg", b"a")

    def down(fn, body):
        raise ConnectionError("gateway down")

    assert store.outbox.deliver(down, store) == 0
    assert len(store.outbox) == 1
    assert [ev.key for _, ev in collect(store)] == ["audio/1/s/a.ogg"]


def test_crash_after_store_before_delivery_redelivers_on_restart(tmp_path):
    # A separate process stores an object and dies before anything delivers its event.
    code = (
        "import os, sys; from homelabpi.store.local import LocalStore;"
        f"s = LocalStore({str(tmp_path / 'store')!r}, outbox_dir={str(tmp_path / 'outbox')!r});"
        "s.put('audio/1/s/c.ogg', b'clip'); os._exit(9)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    restarted = LocalStore(tmp_path / "store", outbox_dir=tmp_path / "outbox")
    assert [ev.key for _, ev in collect(restarted)] == ["audio/1/s/c.ogg"]
    assert collect(restarted) == []  # delivered once, then gone


def test_record_for_an_object_that_never_landed_is_dropped_after_grace(store):
    record = make_record(store.bucket, "audio/1/s/ghost.ogg", "deadbeef", 4)
    store.outbox.add("audio/1/s/ghost.ogg", "deadbeef", record)
    assert collect(store) == [] and len(store.outbox) == 1  # may still be landing: wait
    store.outbox.grace = 0.0
    time.sleep(0.01)
    assert collect(store) == [] and len(store.outbox) == 0


def test_overwritten_object_delivers_only_current_version(store):
    store.put("audio/1/s/a.ogg", b"v1")
    store.put("audio/1/s/a.ogg", b"v2")
    store.outbox.grace = 0.0
    sent = collect(store)
    assert [ev.etag for _, ev in sent] == [hashlib.md5(b"v2").hexdigest()]


def test_unreadable_outbox_record_is_set_aside(store):
    (store.outbox.dir / "00000000000000000001-bad.json").write_text("{not json")
    store.put("audio/1/s/a.ogg", b"a")
    assert [ev.key for _, ev in collect(store)] == ["audio/1/s/a.ogg"]
    assert list(store.outbox.dir.glob("*.bad"))


def test_sidecar_lost_in_crash_is_recomputed(store):
    store.put("audio/1/s/a.ogg", b"abc")
    (store.meta / "audio/1/s/a.ogg.json").unlink()
    assert store.stat("audio/1/s/a.ogg").etag == hashlib.md5(b"abc").hexdigest()


def test_event_body_is_json_with_records(store):
    store.put("audio/1/s/a.ogg", b"a", metadata={"speaker": "Zoë"})
    body = json.loads((store.outbox.pending()[0]).read_text())["body"]
    assert body["EventName"] == "s3:ObjectCreated:Put"
    assert body["Records"][0]["s3"]["object"]["userMetadata"]["X-Amz-Meta-Speaker"] == "Zoë"
