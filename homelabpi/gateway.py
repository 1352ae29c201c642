"""The local gateway: the OpenFaaS gateway's routes, for the embedded default.

    POST /function/<name>        run now, answer with the function's status and body
    POST /async-function/<name>  queue durably, answer 202 + X-Call-Id, run with retries,
                                 POST the result to X-Callback-Url when one was given
    HEAD /function/<name>, /async-function/<name>   200, no work (MinIO's webhook probe)
    GET  /healthz                liveness

Async calls live in a SQLite queue under the data directory: a call accepted is run even if the
process dies first. 2xx and 4xx results are final (a bad event will not get better); 5xx and
crashes are retried with exponential backoff, then parked as failed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import requests
from flask import Flask, Response, request

from homelabpi.functions import FUNCTIONS, invoke
from homelabpi.runtime import Runtime

log = logging.getLogger(__name__)
FORWARDED_HEADERS = ("Authorization", "Content-Type", "X-Callback-Url", "X-Call-Id")
BACKOFF_SECONDS = 1.0


class CallQueue:
    """Durable async calls. One row per call; `state` is queued, running, done or failed."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=wal")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS call (id TEXT PRIMARY KEY, function TEXT, body BLOB, "
            "headers TEXT, state TEXT, attempts INTEGER DEFAULT 0, due REAL, status INTEGER, "
            "result TEXT, created REAL)")
        self._lock = threading.Lock()
        self.wake = threading.Event()
        # A call that was running when the process died is run again.
        self._db.execute("UPDATE call SET state = 'queued' WHERE state = 'running'")

    def add(self, function: str, body: bytes, headers: dict[str, str]) -> str:
        call_id = headers.get("X-Call-Id") or str(uuid.uuid4())
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO call (id, function, body, headers, state, due, created) "
                "VALUES (?, ?, ?, ?, 'queued', ?, ?)",
                (call_id, function, body, json.dumps(headers), time.time(), time.time()))
        self.wake.set()
        return call_id

    def claim(self) -> tuple[str, str, bytes, dict, int] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, function, body, headers, attempts FROM call WHERE state = 'queued' "
                "AND due <= ? ORDER BY due, created LIMIT 1", (time.time(),)).fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE call SET state = 'running' WHERE id = ?", (row[0],))
        return row[0], row[1], row[2], json.loads(row[3]), row[4]

    def finish(self, call_id: str, state: str, status: int, result: str,
               retry_in: float | None = None) -> None:
        with self._lock:
            if retry_in is not None:
                self._db.execute(
                    "UPDATE call SET state = 'queued', attempts = attempts + 1, due = ?, "
                    "status = ?, result = ? WHERE id = ?",
                    (time.time() + retry_in, status, result, call_id))
            else:
                self._db.execute(
                    "UPDATE call SET state = ?, attempts = attempts + 1, status = ?, result = ? "
                    "WHERE id = ?", (state, status, result, call_id))

    def get(self, call_id: str) -> dict | None:
        row = self._db.execute("SELECT id, function, state, attempts, status, result FROM call "
                               "WHERE id = ?", (call_id,)).fetchone()
        if row is None:
            return None
        return dict(zip(("id", "function", "state", "attempts", "status", "result"), row,
                        strict=True))

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT state, count(*) FROM call GROUP BY state").fetchall())

    def close(self) -> None:
        self._db.close()


class Worker(threading.Thread):
    """Runs queued async calls one at a time (the index function is a single writer)."""

    def __init__(self, queue: CallQueue, runtime: Runtime, retries: int) -> None:
        super().__init__(name="homelabpi-async", daemon=True)
        self.queue, self.runtime, self.retries = queue, runtime, retries
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            if not self.run_one():
                self.queue.wake.wait(0.2)
                self.queue.wake.clear()

    def run_one(self) -> bool:
        claimed = self.queue.claim()
        if claimed is None:
            return False
        call_id, function, body, headers, attempts = claimed
        status, doc = invoke(function, body, headers, self.runtime)
        result = json.dumps(doc)
        if status >= 500 and attempts + 1 < self.retries:
            delay = BACKOFF_SECONDS * 2 ** attempts
            log.warning("async %s call %s failed (%d), retry %d in %.0f s", function, call_id,
                        status, attempts + 1, delay)
            self.queue.finish(call_id, "queued", status, result, retry_in=delay)
            return True
        state = "done" if status < 500 else "failed"
        self.queue.finish(call_id, state, status, result)
        log.info("async %s call %s %s with %d", function, call_id, state, status)
        callback = headers.get("X-Callback-Url")
        if callback:
            try:
                requests.post(callback, data=result, timeout=10, headers={
                    "X-Call-Id": call_id, "X-Function-Status": str(status),
                    "X-Function-Name": function, "Content-Type": "application/json"})
            except requests.RequestException as exc:
                log.warning("callback for %s to %s failed: %s", call_id, callback, exc)
        return True


def create_app(runtime: Runtime, queue: CallQueue) -> Flask:
    app = Flask("homelabpi-gateway")
    limit = runtime.settings.max_upload_bytes
    app.config["MAX_CONTENT_LENGTH"] = limit

    def known(name: str) -> Response | None:
        if name not in FUNCTIONS:
            return _json({"error": f"no function {name!r}; have {', '.join(FUNCTIONS)}"}, 404)
        return None

    @app.get("/healthz")
    def healthz() -> Response:
        return _json({"ok": True, "functions": list(FUNCTIONS), "queue": queue.counts()}, 200)

    @app.route("/function/<name>", methods=["POST", "HEAD", "GET"])
    def sync_call(name: str) -> Response:
        if (missing := known(name)) or request.method != "POST":
            return missing or Response(status=200)
        status, doc = invoke(name, request.get_data(), request.headers, runtime)
        return _json(doc, status)

    @app.route("/async-function/<name>", methods=["POST", "HEAD", "GET"])
    def async_call(name: str) -> Response:
        if (missing := known(name)) or request.method != "POST":
            return missing or Response(status=200)
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        call_id = queue.add(name, request.get_data(), headers)
        return Response(status=202, headers={"X-Call-Id": call_id})

    @app.get("/async-call/<call_id>")
    def call_status(call_id: str) -> Response:
        found = queue.get(call_id)
        return _json(found or {"error": f"no call {call_id!r}"}, 200 if found else 404)

    return app


def _json(doc: dict, status: int) -> Response:
    return Response(json.dumps(doc, ensure_ascii=False), status=status,
                    mimetype="application/json")
