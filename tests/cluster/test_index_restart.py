"""The index function on the cluster: killed mid-write and restarted on a fresh container disk,
it resumes from the published shards; redelivered and out-of-order events change nothing.

The shard part size is set tiny, so the month spans several parts, as a busy month does."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "template"))
from runner import FunctionProcess  # noqa: E402

from homelabpi.events import make_event  # noqa: E402
from homelabpi.index.publish import published_shards  # noqa: E402
from homelabpi.store.minio import MinioStore  # noqa: E402
from homelabpi.subtitles import parse  # noqa: E402
from homelabpi.transcripts import ClipInfo, document, parse_time  # noqa: E402

TOKEN = "restart-token-42"
BUCKET = "homelabpi-restart"
PART_MB = "0.16"  # an empty shard is ~0.15 MB: a handful of clips per part


def index_process(workdir: Path, s3, run: int, bucket: str = BUCKET) -> FunctionProcess:
    # Every run gets an empty data dir: a new container has nothing from the old one.
    return FunctionProcess(
        "index", workdir,
        env={"HOMELABPI_S3_ENDPOINT": s3.endpoint, "HOMELABPI_S3_BUCKET": bucket,
             "HOMELABPI_DATA_DIR": str(workdir / f"container-{run}"),
             "HOMELABPI_EMBEDDINGS": "false", "HOMELABPI_SHARD_PART_MB": PART_MB},
        secrets={"homelabpi-token": TOKEN, "homelabpi-s3-access-key": s3.access_key,
                 "homelabpi-s3-secret-key": s3.secret_key}).start()


def put_transcripts(store: MinioStore, first: int, count: int) -> list[str]:
    keys = []
    for i in range(first, first + count):
        info = ClipInfo(guild="g1", session="s1", clip=f"c{i:03d}", channel="lab",
                        speaker=f"speaker{i % 3}",
                        started_at=parse_time(f"2026-11-10T10:{i // 60:02d}:{i % 60:02d}Z"))
        segments = parse(f"WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nfact number {i} is "
                         f"{'alpha' if i % 2 else 'beta'}\n", info.speaker, "x.vtt")
        key = f"transcripts/g1/s1/c{i:03d}.json"
        store.put(key, json.dumps(document(info, source_key=key, source_etag="", kind="subtitles",
                                           engine="subtitles", duration=2.0,
                                           segments=segments)).encode())
        keys.append(key)
    return keys


def events(store: MinioStore, keys: list[str]) -> bytes:
    records = []
    for key in keys:
        info = store.stat(key)
        records += json.loads(make_event(bucket=store.bucket, key=key, etag=info.etag,
                                         size=info.size))["Records"]
    return json.dumps({"Records": records}).encode()


def post(proc: FunctionProcess, body: bytes) -> requests.Response:
    return requests.post(proc.url, data=body, timeout=300,
                         headers={"Authorization": f"Bearer {TOKEN}"})


def published_clips(store: MinioStore, tmp_path: Path) -> list[tuple[str, str]]:
    """Every (key, etag) in the published parts, sorted; a clip in two parts shows twice."""
    clips = []
    for name in published_shards(store, "g1"):
        path = tmp_path / f"check-{name}.sqlite3"
        store.get_file(f"index/g1/{name}.sqlite3", path)
        conn = sqlite3.connect(path)
        try:
            clips += conn.execute("SELECT key, etag FROM clip").fetchall()
        finally:
            conn.close()
    return sorted(clips)


@pytest.mark.slow
def test_killed_index_resumes_from_published_shard(s3_server, tmp_path):
    store = MinioStore(s3_server.endpoint, s3_server.access_key, s3_server.secret_key,
                       bucket=BUCKET)
    store.ensure_bucket()
    first = put_transcripts(store, 0, 5)
    second = put_transcripts(store, 5, 60)

    proc = index_process(tmp_path, s3_server, 1)
    try:
        r = post(proc, events(store, first))
        assert r.status_code == 200, r.text
        assert len(published_clips(store, tmp_path)) == 5
        # A big batch, and the container dies in the middle of it.
        threading.Thread(target=lambda: _ignore(post, proc, events(store, second)),
                         daemon=True).start()
        _wait_for_log(proc, "into g1/2026-11")
        proc.proc.kill()
        proc.proc.wait(10)
    finally:
        proc.stop()
    assert len(published_clips(store, tmp_path)) == 5  # nothing half-written was published

    restarted = index_process(tmp_path, s3_server, 2)
    try:
        # MinIO's queue_dir redelivers what was not acknowledged, in any order, maybe twice.
        r = post(restarted, events(store, list(reversed(second))))
        outcomes = [x["outcome"] for x in r.json()["results"]]
        assert r.status_code == 200 and outcomes == ["indexed"] * len(second)
        r = post(restarted, events(store, first + second[:3]))
        assert [x["outcome"] for x in r.json()["results"]] == ["unchanged"] * 8
    finally:
        restarted.stop()
    clips = published_clips(store, tmp_path)
    assert [k for k, _ in clips] == sorted(first + second)  # every clip, each exactly once
    assert all(etag == store.stat(k).etag for k, etag in clips)
    assert "restored" in restarted.log()
    parts = published_shards(store, "g1")
    assert len(parts) >= 3, parts


@pytest.mark.slow
def test_a_busy_month_publishes_one_part_and_forgets_from_any(s3_server, tmp_path):
    store = MinioStore(s3_server.endpoint, s3_server.access_key, s3_server.secret_key,
                       bucket=BUCKET + "-parts")
    store.ensure_bucket()
    keys = put_transcripts(store, 0, 60)
    proc = index_process(tmp_path, s3_server, 1, store.bucket)
    try:
        assert post(proc, events(store, keys)).status_code == 200
    finally:
        proc.stop()
    parts = published_shards(store, "g1")
    assert len(parts) >= 3, parts
    etags = {n: store.stat(f"index/g1/{n}.sqlite3").etag for n in parts}

    # A new container: one new clip re-uploads the open part only.
    restarted = index_process(tmp_path, s3_server, 2, store.bucket)
    try:
        s3_server.clear()
        new = put_transcripts(store, 60, 1)
        s3_server.clear()
        assert post(restarted, events(store, new)).json()["results"][0]["outcome"] == "indexed"
        puts = [k for k in s3_server.object_puts(store.bucket) if k.startswith("index/")]
        assert len(puts) == 1 and puts[0].removeprefix("index/g1/").removesuffix(".sqlite3") in (
            parts[-1], f"2026-11.{len(parts) + 1}")
        after = {n: store.stat(f"index/g1/{n}.sqlite3").etag for n in parts[:-1]}
        assert after == {n: etags[n] for n in parts[:-1]}
    finally:
        restarted.stop()

    # Another fresh container gets only a deletion (as /forget makes): the clip's month is not
    # in its key, yet it is found in the first part and removed there.
    removed = index_process(tmp_path, s3_server, 3, store.bucket)
    try:
        store.delete(keys[0])
        body = json.loads(events(store, [keys[1]]))
        body["Records"][0]["eventName"] = "s3:ObjectRemoved:Delete"
        body["Records"][0]["s3"]["object"]["key"] = keys[0]
        result = post(removed, json.dumps(body).encode()).json()["results"][0]
        assert (result["outcome"], result["shard"]) == ("removed", parts[0])
    finally:
        removed.stop()
    assert [k for k, _ in published_clips(store, tmp_path)] == sorted(keys[1:] + new)


def _ignore(fn, *args):
    with contextlib.suppress(requests.RequestException):  # the process is killed under it
        fn(*args)


def _wait_for_log(proc: FunctionProcess, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    seen = proc.log().count(text)
    while time.monotonic() < deadline:
        if proc.log().count(text) > seen:
            return
        time.sleep(0.01)
    raise AssertionError(f"never saw {text!r} in the log:\n{proc.log()[-2000:]}")
