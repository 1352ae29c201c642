"""Lost events on the cluster path, and the reconciler that repairs them.

The functions run as the template serves them (one process each, tests/template/runner.py), the
store is a real S3 endpoint (moto), and a loopback gateway proxies `/function/<name>` to them as
the OpenFaaS gateway does. MinIO's webhook plus OpenFaaS CE's queue-worker are modelled at their
narrowest: an event is either dropped (30 %, at random, seeded) or delivered with exactly one
call whose failure is not retried (openfaas/nats-queue-worker main.go; faasd_model.py).
"""

from __future__ import annotations

import json
import random
import sys
import threading
from pathlib import Path

import pytest
import requests
from faasd_model import queue_worker_delivers
from noise_clips import noise_wav
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "template"))
from runner import FunctionProcess  # noqa: E402

from homelabpi.events import make_event  # noqa: E402
from homelabpi.runtime import Runtime  # noqa: E402
from homelabpi.settings import Settings  # noqa: E402
from homelabpi.store.minio import MinioStore  # noqa: E402

TOKEN = "reconcile-token-0123456789"
BUCKET = "homelabpi-reconcile"
CLIPS = 50
DROP = 0.3


class Gateway:
    """The OpenFaaS gateway's synchronous route: POST /function/<name> proxied to the function
    (openfaas/faas gateway/handlers/forwarding_proxy.go), headers and status passed through."""

    def __init__(self, functions: dict[str, str]) -> None:
        self.functions = functions
        self.calls: list[tuple[str, int]] = []
        app = Request.application(self._handle)
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handle(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "function" or parts[1] not in self.functions:
            return Response("Not Found", status=404)
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type")}
        r = requests.post(self.functions[parts[1]], data=request.get_data(), headers=headers,
                          timeout=300)
        self.calls.append((parts[1], r.status_code))
        return Response(r.content, status=r.status_code, content_type=r.headers.get(
            "Content-Type", "text/plain"))


@pytest.fixture(scope="module")
def cluster(s3_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reconcile")
    store = MinioStore(s3_server.endpoint, s3_server.access_key, s3_server.secret_key,
                       bucket=BUCKET)
    store.ensure_bucket()
    procs: dict[str, FunctionProcess] = {}
    gateway = Gateway({})
    gateway.thread.start()
    secrets = {"homelabpi-token": TOKEN, "homelabpi-s3-access-key": s3_server.access_key,
               "homelabpi-s3-secret-key": s3_server.secret_key}
    try:
        for name in ("transcribe", "index", "reconcile"):
            env = {"HOMELABPI_S3_ENDPOINT": s3_server.endpoint, "HOMELABPI_S3_BUCKET": BUCKET,
                   "HOMELABPI_DATA_DIR": str(workdir / f"data-{name}"),
                   "HOMELABPI_EMBEDDINGS": "false", "HOMELABPI_RECONCILE_LIMIT": "200"}
            if name == "reconcile":
                env["HOMELABPI_GATEWAY"] = gateway.url
            procs[name] = FunctionProcess(name, workdir, env=env, secrets=secrets).start(120)
            gateway.functions[name] = procs[name].url
        yield store, gateway, procs
    finally:
        gateway.server.shutdown()
        for p in procs.values():
            p.stop()


def _deliver(gateway: Gateway, function: str, body: bytes, rng: random.Random) -> bool:
    """MinIO's webhook then the queue-worker: maybe dropped, else one call, never retried."""
    if rng.random() < DROP:
        return False
    r = requests.post(f"{gateway.url}/function/{function}", data=body, timeout=300,
                      headers={"Authorization": f"Bearer {TOKEN}",
                               "Content-Type": "application/json"})
    return queue_worker_delivers(r.status_code)


def _event(store, key):
    info = store.stat(key)
    return make_event(bucket=store.bucket, key=key, etag=info.etag, size=info.size)


def _clip_rows(store: MinioStore, tmp_path: Path) -> dict[str, int]:
    """{transcript key: rows} over every published shard of the guild, read as answer does."""
    rt = Runtime(Settings(data_dir=tmp_path / "reader"), store=store)
    try:
        rows: dict[str, int] = {}
        with rt.guild_readers("g1") as conns:
            for conn in conns:
                for (key,) in conn.execute("SELECT key FROM clip"):
                    rows[key] = rows.get(key, 0) + 1
        return rows
    finally:
        rt.close()


@pytest.mark.slow
def test_one_reconciler_run_indexes_every_clip_exactly_once(cluster, tmp_path):
    store, gateway, procs = cluster
    rng = random.Random(11)
    audio_keys = [f"audio/g1/s-rec/c-{i:04d}.wav" for i in range(CLIPS)]
    for i, key in enumerate(audio_keys):
        store.put(key, noise_wav(i), content_type="audio/wav",
                  metadata={"speaker": f"Speaker{i % 3}", "channel": "general",
                            "started-at": f"2026-11-24T12:{i // 60:02d}:{i % 60:02d}.000Z",
                            "source": "bot"})
        _deliver(gateway, "transcribe", _event(store, key), rng)
    for obj in list(store.list("transcripts/g1/")):
        _deliver(gateway, "index", _event(store, obj.key), rng)

    transcripts = {o.key for o in store.list("transcripts/g1/")}
    before = _clip_rows(store, tmp_path / "before")
    assert len(transcripts) < CLIPS and len(before) < len(transcripts), (
        "the drop model must lose both transcribe and index events for this test to mean "
        f"anything: {len(transcripts)} transcripts, {len(before)} indexed")

    # cron-connector's call: through the gateway, no bearer token, no body that matters.
    r = requests.post(f"{gateway.url}/function/reconcile", data=b"", timeout=600)
    assert r.status_code == 200, f"{r.text}\n{procs['reconcile'].log()[-3000:]}"
    report = r.json()
    assert report["failed"] == [] and report["left"] == 0, report
    assert len(report["transcribed"]) == CLIPS - len(transcripts)

    expected = {f"transcripts/g1/s-rec/c-{i:04d}.json" for i in range(CLIPS)}
    rows = _clip_rows(store, tmp_path / "after")
    assert set(rows) == expected
    assert set(rows.values()) == {1}, {k: v for k, v in rows.items() if v != 1}
    for key in expected:
        doc = json.loads(store.get(key))
        assert doc["status"] == "ok", (key, doc.get("error"))

    # Idempotent: a second run finds nothing to do and changes nothing.
    r = requests.post(f"{gateway.url}/function/reconcile", data=b"", timeout=600)
    assert r.status_code == 200
    again = r.json()
    assert again["transcribed"] == [] and again["indexed"] == [] and again["removed"] == []
    assert _clip_rows(store, tmp_path / "again") == rows


def test_reconcile_is_open_but_the_others_still_need_the_token(cluster):
    _, gateway, _ = cluster
    body = make_event(bucket=BUCKET, key="audio/g1/s1/none.wav", etag="0" * 32, size=1)
    for name in ("transcribe", "index"):
        r = requests.post(f"{gateway.url}/function/{name}", data=body, timeout=30)
        assert r.status_code == 401, r.text
