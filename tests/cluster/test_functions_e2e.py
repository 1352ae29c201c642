"""The three functions as the cluster runs them: each handler served by the python3-flask
template entry point in its own process, talking to a real HTTP S3 endpoint (moto), called with
MinIO-format events and the bearer token the MinIO webhook sends.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "template"))
from runner import FunctionProcess  # noqa: E402

from homelabpi.asr.scoring import normalize  # noqa: E402
from homelabpi.events import make_event  # noqa: E402
from homelabpi.store.minio import MinioStore  # noqa: E402

TOKEN = "e2e-token-0123456789"
WAV_DIR = Path("/usr/share/pocketsphinx/test/data/librivox")
WAV = WAV_DIR / "sense_and_sensibility_01_austen_64kb-0880.wav"  # "he was not an ill disposed…"
BUCKET = "homelabpi-e2e"


def _fn(name, workdir, s3, suffix=""):
    data = workdir / f"data-{name}{suffix}"
    return FunctionProcess(
        name, workdir,
        env={"HOMELABPI_S3_ENDPOINT": s3.endpoint, "HOMELABPI_S3_BUCKET": BUCKET,
             "HOMELABPI_DATA_DIR": str(data), "HOMELABPI_LOG_LEVEL": "DEBUG"},
        secrets={"homelabpi-token": TOKEN, "homelabpi-s3-access-key": s3.access_key,
                 "homelabpi-s3-secret-key": s3.secret_key})


@pytest.fixture(scope="module")
def cluster(s3_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cluster")
    store = MinioStore(s3_server.endpoint, s3_server.access_key, s3_server.secret_key,
                       bucket=BUCKET)
    store.ensure_bucket()
    procs = {}
    try:
        for name in ("transcribe", "index"):
            procs[name] = _fn(name, workdir, s3_server).start()
        procs["answer-a"] = _fn("answer", workdir, s3_server, "-a").start()
        procs["answer-b"] = _fn("answer", workdir, s3_server, "-b").start()
        yield store, procs
    finally:
        for p in procs.values():
            p.stop()


def _post(proc, body, token=TOKEN, timeout=300):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(proc.url, data=body, headers=headers, timeout=timeout)


def _event(store, key):
    info = store.stat(key)
    return make_event(bucket=store.bucket, key=key, etag=info.etag, size=info.size)


def test_functions_import_the_copied_library(cluster):
    _, procs = cluster
    for proc in procs.values():
        line = next(ln for ln in proc.log().splitlines() if "homelabpi from" in ln)
        assert f"{os.sep}function{os.sep}homelabpi{os.sep}__init__.py" in line, line


@pytest.mark.parametrize("name", ["transcribe", "index", "answer-a"])
def test_missing_or_wrong_token_is_401_without_detail(cluster, s3_server, name):
    store, procs = cluster
    body = make_event(bucket=BUCKET, key="audio/g1/s1/none.wav", etag="0" * 32, size=1)
    if name.startswith("answer"):
        body = json.dumps({"question": "anything?", "guild": "g1"}).encode()
    s3_server.clear()
    for token in (None, "wrong-token", ""):
        r = _post(procs[name], body, token=token)
        assert r.status_code == 401, r.text
        assert TOKEN not in r.text and "wrong-token" not in r.text
        assert r.json() == {"error": "unauthorized"}
    assert s3_server.requests == []  # rejected before any work


@pytest.mark.parametrize("name", ["transcribe", "index", "answer-a"])
def test_head_probe_is_200_and_does_no_work(cluster, s3_server, name):
    _, procs = cluster
    s3_server.clear()
    r = requests.head(procs[name].url, timeout=10)  # MinIO's liveness probe (token or not)
    assert r.status_code == 200
    r = requests.head(procs[name].url, headers={"Authorization": "Bearer x"}, timeout=10)
    assert r.status_code == 200
    assert s3_server.requests == []


@pytest.mark.slow
@pytest.mark.skipif(not WAV.exists(), reason="pocketsphinx test data not installed")
def test_clip_to_answer_across_processes(cluster, s3_server):
    store, procs = cluster
    audio_key = "audio/g1/s-e2e/c-0001.wav"
    store.put(audio_key, WAV.read_bytes(), content_type="audio/wav",
              metadata={"speaker": "Ana", "started-at": "2026-11-24T12:41:00.000Z",
                        "channel": "general", "source": "bot"})

    # 1. MinIO's webhook -> transcribe.
    r = _post(procs["transcribe"], _event(store, audio_key))
    assert r.status_code == 200, f"{r.text}\n{procs['transcribe'].log()[-3000:]}"
    transcript_key = "transcripts/g1/s-e2e/c-0001.json"
    doc = json.loads(store.get(transcript_key))
    heard = " ".join(seg["text"] for seg in doc["segments"]).lower()
    assert doc["status"] == "ok" and doc["speaker"] == "Ana"
    # "he was not an ill disposed young man"; Whisper writes it with a full stop.
    assert {"young", "man"} <= set(normalize(heard.split())), heard

    # 2. -> index, which publishes the guild's shard to the store.
    r = _post(procs["index"], _event(store, transcript_key))
    assert r.status_code == 200, f"{r.text}\n{procs['index'].log()[-3000:]}"
    shards = [o.key for o in store.list("index/g1/")]
    assert shards == ["index/g1/2026-11.sqlite3"], (
        "index did not publish its shard (wire homelabpi.index.publish.publish into the index "
        f"function when the store is MinIO); store has {shards}")

    # 3. Two separate answer replicas fetch the shard and answer from it.
    s3_server.clear()
    question = json.dumps({"question": "who was the young man?", "guild": "g1"}).encode()
    answers = []
    for name in ("answer-a", "answer-b"):
        r = _post(procs[name], question)
        assert r.status_code == 200, f"{r.text}\n{procs[name].log()[-3000:]}"
        answers.append(r.json())
    for a in answers:
        cited = json.dumps(a).lower()
        assert "ana" in cited and "young" in cited, a
    gets = s3_server.object_gets(BUCKET)
    assert gets.count("index/g1/2026-11.sqlite3") == 2  # one download per replica
    # A second question downloads nothing new.
    s3_server.clear()
    assert _post(procs["answer-a"], question).status_code == 200
    assert "index/g1/2026-11.sqlite3" not in s3_server.object_gets(BUCKET)
