"""The local gateway over real HTTP (waitress): sync and async calls, retries, callbacks, probes."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from homelabpi import gateway
from homelabpi.events import make_event
from homelabpi.settings import Settings

VTT = Path(__file__).parent / "data" / "homelab-standup.vtt"


@pytest.fixture
def server(monkeypatch):
    from homelabpi.server import Server

    monkeypatch.setattr(gateway, "BACKOFF_SECONDS", 0.05)
    monkeypatch.setenv("HOMELABPI_BIND", "127.0.0.1:0")
    srv = Server(Settings.from_env()).start()
    yield srv
    srv.stop()


@pytest.fixture
def callbacks():
    """A real HTTP endpoint that records what the gateway posts to X-Callback-Url."""
    received: queue.Queue = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((dict(self.headers), json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/done", received
    httpd.shutdown()


def put_transcript(server) -> tuple[str, bytes]:
    from homelabpi.subtitles import parse
    from homelabpi.transcripts import ClipInfo, document, parse_time

    info = ClipInfo(guild="g1", session="s1", clip="c1", channel="lab", speaker="x",
                    started_at=parse_time("2026-11-23T09:00:00Z"))
    segs = parse(VTT.read_text(), "x", VTT.name)
    key = "transcripts/g1/s1/c1.json"
    doc = document(info, source_key=key, source_etag="", kind="subtitles", engine="subtitles",
                   duration=30, segments=segs)
    stored = server.runtime.store.put(key, json.dumps(doc).encode())
    return key, make_event(bucket="homelabpi", key=key, etag=stored.etag, size=stored.size)


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_probes_and_health(server):
    for path in ("/function/transcribe", "/async-function/index", "/function/answer"):
        r = requests.head(server.url + path, timeout=5)
        assert r.status_code == 200 and r.content == b""
    health = requests.get(server.url + "/healthz", timeout=5).json()
    assert health["ok"] and set(health["functions"]) == {"transcribe", "index", "answer"}
    assert requests.post(server.url + "/function/nope", timeout=5).status_code == 404
    assert requests.post(server.url + "/async-function/nope", timeout=5).status_code == 404


def test_sync_call_and_clear_errors(server):
    r = requests.post(server.url + "/function/answer", data=b"{not json", timeout=5)
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    r = requests.post(server.url + "/function/index", data=b'{"Records": []}', timeout=5)
    assert r.status_code == 400 and "Records" in r.json()["error"]
    r = requests.post(server.url + "/function/answer", timeout=5,
                      json={"question": "where is the nas?", "guild": "g1"})
    assert r.status_code == 200 and "could not find" in r.json()["answer"]


def test_async_call_runs_once_and_calls_back(server, callbacks):
    url, received = callbacks
    # The store's own outbox would also deliver this event; stop that to count our calls only.
    server.dispatcher.stopping.set()
    server.dispatcher.join(5)
    _, event = put_transcript(server)
    outcomes = []
    for _ in range(2):  # the same event twice: at-least-once delivery
        r = requests.post(server.url + "/async-function/index", data=event, timeout=5,
                          headers={"X-Callback-Url": url})
        assert r.status_code == 202 and r.headers["X-Call-Id"]
        headers, body = received.get(timeout=30)
        assert headers["X-Call-Id"] == r.headers["X-Call-Id"]
        assert headers["X-Function-Status"] == "200"
        outcomes.append(body["results"][0]["outcome"])
    assert outcomes == ["indexed", "unchanged"]
    r = requests.post(server.url + "/function/answer", timeout=5,
                      json={"question": "where did the backup nas go?", "guild": "g1"})
    assert r.json()["citations"][0]["speaker"] == "Alice"


def test_async_5xx_is_retried_with_backoff(server):
    server.dispatcher.stopping.set()
    _, event = put_transcript(server)
    blocker = server.settings.index_dir / "g1"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the guild's shard directory belongs")
    r = requests.post(server.url + "/async-function/index", data=event, timeout=5)
    call_id = r.headers["X-Call-Id"]
    status = lambda: requests.get(f"{server.url}/async-call/{call_id}", timeout=5).json()  # noqa: E731
    wait_for(lambda: status()["attempts"] >= 1)
    assert status()["status"] == 500
    blocker.unlink()
    final = wait_for(lambda: status() if status()["state"] == "done" else None)
    assert final["status"] == 200 and final["attempts"] >= 2


def test_async_4xx_is_final(server):
    r = requests.post(server.url + "/async-function/transcribe", data=b"garbage", timeout=5)
    call_id = r.headers["X-Call-Id"]
    final = wait_for(lambda: (s := requests.get(f"{server.url}/async-call/{call_id}",
                                                timeout=5).json())["state"] == "done" and s)
    assert final["status"] == 400 and final["attempts"] == 1


def test_accepted_call_survives_a_crash(tmp_path, monkeypatch):
    from homelabpi.runtime import Runtime

    q = gateway.CallQueue(tmp_path / "queue.sqlite3")
    call_id = q.add("answer", json.dumps({"guild": "g1", "question": "hi"}).encode(), {})
    assert q.claim()[0] == call_id  # claimed, then the process dies mid-call
    q.close()
    q = gateway.CallQueue(tmp_path / "queue.sqlite3")
    worker = gateway.Worker(q, Runtime(Settings.from_env()), retries=3)
    assert worker.run_one()
    assert q.get(call_id)["state"] == "done" and q.get(call_id)["status"] == 200
    assert not worker.run_one()


def test_token_checked_by_the_functions_behind_the_gateway(server, monkeypatch):
    monkeypatch.setenv("HOMELABPI_TOKEN_HOMELABPI_TOKEN", "t0ken")
    url = server.url + "/function/answer"
    body = {"question": "x", "guild": "g1"}
    assert requests.post(url, json=body, timeout=5).status_code == 401
    assert requests.post(url, json=body, timeout=5,
                         headers={"Authorization": "Bearer t0ken"}).status_code == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_up_then_ingest_and_ask_through_the_gateway(librivox, tmp_path):
    """The embedded default as a user runs it: `homelabpi up` in one process, the CLI in others."""
    port = free_port()
    env = {**os.environ, "HOMELABPI_BIND": f"127.0.0.1:{port}"}
    up = subprocess.Popen([sys.executable, "-m", "homelabpi", "up"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _healthy(base))
        client_env = {**env, "HOMELABPI_GATEWAY": base}
        paths = [str(p) for p in librivox][:2] + [str(VTT)]
        out = subprocess.run([sys.executable, "-m", "homelabpi", "ingest", *paths, "--guild", "3",
                              "--channel", "lab", "--speaker", "Narrator", "--json"],
                             env=client_env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert [c["status"] for c in json.loads(out.stdout)["clips"]] == ["indexed"] * 3
        ask = subprocess.run([sys.executable, "-m", "homelabpi", "ask", "who moved the backup nas",
                              "--guild", "3", "--json"], env=client_env, capture_output=True,
                             text=True, timeout=60)
        assert json.loads(ask.stdout)["citations"][0]["speaker"] == "Alice"
    finally:
        up.terminate()
        log = up.communicate(timeout=30)[0]
    assert "gateway listening on" in log and "DISCORD_TOKEN unset" in log
    assert "transcribed audio/3/" in log  # the work happened in the gateway's process


def _healthy(base: str) -> bool:
    try:
        return requests.get(base + "/healthz", timeout=1).ok
    except requests.RequestException:
        return False
