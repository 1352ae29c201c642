"""The three functions as plain callables: body in, (status, JSON document) out.

`functions/<name>/handler.py` (OpenFaaS python3-flask) and the local gateway both call
`invoke`, so the cluster and the embedded default run the same code for the same payloads.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from homelabpi import transcripts
from homelabpi.answering import answer as answering
from homelabpi.answering import retrieval
from homelabpi.auth import require_token
from homelabpi.errors import BadInput, HomeLabPiError, NotFound
from homelabpi.events import parse_events
from homelabpi.index import indexer, reads
from homelabpi.keys import new_id, query_key, validate_id
from homelabpi.runtime import Runtime, current

log = logging.getLogger(__name__)
Result = tuple[int, dict]


def _per_record(body: bytes, one: Callable[[str, str, str], dict]) -> Result:
    """Run `one(name, key, etag)` for every record; a bad record never stops the others."""
    results, worst = [], 200
    for ev in parse_events(body):
        try:
            results.append(one(ev.name, ev.key, ev.etag))
        except HomeLabPiError as exc:
            worst = max(worst, exc.status)
            results.append({"key": ev.key, "outcome": "rejected", "error": str(exc)})
    return worst, {"results": results}


def transcribe(body: bytes, rt: Runtime) -> Result:
    from homelabpi.transcribe import transcribe_object  # PyAV is only in transcribe's image

    def one(name: str, key: str, etag: str) -> dict:
        if not name.startswith("s3:ObjectCreated:") or not key.startswith("audio/"):
            return {"key": key, "outcome": "ignored"}
        return transcribe_object(rt, key)

    return _per_record(body, one)


def index(body: bytes, rt: Runtime) -> Result:
    touched: set[tuple[str, str]] = set()

    def one(name: str, key: str, etag: str) -> dict:
        result = _index_one(rt, name, key)
        if result.get("outcome") in ("indexed", "replaced", "removed", "unchanged"):
            touched.add((result["guild"], result["shard"]))
        return result

    status, doc = _per_record(body, one)
    rt.publish(touched)
    return status, doc


def _index_one(rt: Runtime, name: str, key: str) -> dict:
    created = name.startswith("s3:ObjectCreated:")
    if key.startswith("transcripts/") and not created:
        return indexer.remove_transcript(rt.shards, key, validate_id(key.split("/")[1],
                                                                      "guild")).__dict__
    if not created or not key.startswith(("transcripts/", "queries/")):
        return {"key": key, "outcome": "ignored"}
    try:
        # The store, not the event, is the truth: index what is there now, so a late or
        # repeated event for an older version changes nothing.
        info = rt.store.stat(key)
        body = rt.store.get(key)
    except NotFound:
        return {"key": key, "outcome": "gone"}
    guild = validate_id(key.split("/")[1], "guild")
    if key.startswith("queries/"):
        doc = _json(body, key)
        if doc.get("guild") != guild:
            raise BadInput(f"{key}: query names guild {doc.get('guild')!r}, not {guild!r}")
        return indexer.index_query(rt.shards, key, info.etag, doc).__dict__
    doc = transcripts.load(body, key)
    if doc["guild"] != guild:
        raise BadInput(f"{key}: transcript names guild {doc['guild']!r}, but its key is "
                       f"under guild {guild!r}")
    return indexer.index_transcript(rt.shards, key, info.etag, doc, rt.embedder).__dict__


def answer(body: bytes, rt: Runtime) -> Result:
    """Reads for a guild: `op` is ask (default), search, sessions, transcript, status or queries."""
    req = _json(body, "answer request")
    if not isinstance(req, dict):
        raise BadInput("answer request must be a JSON object such as "
                       '{"question": "…", "guild": "…"}')
    op = req.get("op", "ask")
    if op == "transcript" and not req.get("guild"):
        return 200, reads.transcript(str(req.get("session", "")), rt.guilds(), rt.guild_readers)
    guild = validate_id(str(req.get("guild", "")), "guild")
    with rt.guild_readers(guild) as conns:
        if op == "ask":
            return 200, _ask(rt, conns, guild, req)
        if op == "search":
            hits = retrieval.search(conns, _text(req, "text"), _limit(req, 10, 100))
            return 200, {"hits": [dict(h.citation(), score=round(h.score, 3)) for h, _ in hits]}
        if op == "sessions":
            return 200, {"sessions": reads.sessions(conns)}
        if op == "transcript":
            return 200, reads.transcript(str(req.get("session", "")), [guild], rt.guild_readers)
        if op == "status":
            return 200, {"clips": reads.clip_status(conns, [str(k) for k in req.get("keys", [])])}
        if op == "queries":
            return 200, {"queries": reads.query_log(conns, _limit(req, 20, 1000))}
        if op == "clips":
            speaker = validate_id(str(req.get("speaker_id", "")), "speaker_id")
            return 200, reads.speaker_clips(conns, speaker)
        raise BadInput(f"unknown op {op!r}; use ask, search, sessions, transcript, status, "
                       "queries or clips")


def _ask(rt: Runtime, conns: list, guild: str, req: dict) -> dict:
    """Answer, then log question, answer, citations, mode, latency, asker and thread.

    `thread` (a Discord thread id) lets a follow-up ("and Alice?") build on the thread's
    previous question; `now` (ISO 8601, default: the current time) is what "yesterday" is
    relative to, e.g. the time the Discord message was sent.
    """
    question = _text(req, "question")
    thread = str(req.get("thread") or "")
    if thread:
        validate_id(thread, "thread")
    asker = str(req.get("asker") or "")
    asked = datetime.now(UTC)
    now = transcripts.parse_time(str(req["now"]), "now") if req.get("now") else asked
    t0 = time.perf_counter()
    previous = _thread_previous(conns, guild, thread) if thread else None
    q = answering.understand(conns, question, now=now, tz=rt.settings.timezone, asker=asker,
                             previous=previous)
    result = answering.answer(conns, q, embedder=rt.embedder, reader=rt.reader,
                              min_score=rt.settings.reader_min_score).as_dict()
    latency = int((time.perf_counter() - t0) * 1000)
    qid = new_id("q", asked)
    resolved = q.resolved()
    doc = {"id": qid, "guild": guild, "question": question, "asker": asker,
           "asked_at": transcripts.iso(asked), "latency_ms": latency, "thread": thread,
           "resolved": resolved, **result}
    if thread:
        _remember(guild, thread, asked.timestamp(), resolved)
    try:
        rt.store.put(query_key(guild, qid, asked), json.dumps(doc, ensure_ascii=False).encode(),
                     content_type="application/json")
    except HomeLabPiError as exc:  # the answer matters more than its log entry
        log.warning("could not log query %s for guild %s: %s", qid, guild, exc)
    log.info("answered %s for guild %s in %d ms (%s, confidence %.2f)", qid, guild, latency,
             result["mode"], result["confidence"])
    return result


# The last question of recent threads in this process: a follow-up asked before the index has
# logged the previous question (the log is written asynchronously) still finds it here.
_threads: OrderedDict[tuple[str, str], tuple[float, dict]] = OrderedDict()
_threads_lock = threading.Lock()
_THREADS_KEPT = 1000


def _remember(guild: str, thread: str, asked: float, resolved: dict) -> None:
    with _threads_lock:
        _threads[(guild, thread)] = (asked, resolved)
        _threads.move_to_end((guild, thread))
        while len(_threads) > _THREADS_KEPT:
            _threads.popitem(last=False)


def _thread_previous(conns: list, guild: str, thread: str) -> dict | None:
    """The thread's latest resolved question: this process's memory or the query log."""
    with _threads_lock:
        best = _threads.get((guild, thread))
    for conn in conns:
        try:
            row = conn.execute("SELECT asked_at, resolved FROM query WHERE thread = ? "
                               "ORDER BY asked_at DESC LIMIT 1", (thread,)).fetchone()
        except sqlite3.OperationalError:  # a v1 shard: no threads logged there
            continue
        if row and (best is None or row[0] > best[0]):
            best = (row[0], json.loads(row[1] or "{}"))
    return best[1] if best and best[1] else None












def _json(body: bytes, what: str):
    try:
        return json.loads(body or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{what} is not JSON: {exc}") from exc


def _limit(req: dict, default: int, most: int) -> int:
    try:
        return max(1, min(int(req.get("limit", default)), most))
    except (TypeError, ValueError) as exc:
        raise BadInput(f"'limit' must be a whole number, not {req.get('limit')!r}") from exc


def _text(req: dict, field: str) -> str:
    value = req.get(field)
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"'{field}' is required and must be non-empty text")
    if len(value) > 2000:
        raise BadInput(f"'{field}' is longer than 2000 characters")
    return value.strip()


def reconcile(body: bytes, rt: Runtime) -> Result:
    """Re-drive lost events (homelabpi/reconcile.py). The body is ignored: a run is bounded by
    settings, so a caller can trigger one but not steer it."""
    from homelabpi import reconcile as reconciler

    call = (reconciler.through_gateway(rt.settings.gateway) if rt.settings.gateway
            else reconciler.in_process(rt))
    report = reconciler.reconcile(rt, call, limit=rt.settings.reconcile_limit)
    return 200, report.as_dict()


FUNCTIONS: dict[str, Callable[[bytes, Runtime], Result]] = {
    "transcribe": transcribe, "index": index, "answer": answer,
}
# Run on a schedule, not by events: on faasd cron-connector calls it through the gateway without
# our bearer token (it takes no input; its work is bounded and idempotent, so it needs none). The
# embedded default runs the same pass on a timer inside `up` (homelabpi.reconcile.Timer).
SCHEDULED: dict[str, Callable[[bytes, Runtime], Result]] = {"reconcile": reconcile}


def invoke(name: str, body: bytes, headers: Mapping[str, str] | None = None,
           rt: Runtime | None = None) -> Result:
    """Authenticate, run a function, and turn any failure into a status and a message."""
    fn = FUNCTIONS.get(name) or SCHEDULED.get(name)
    if fn is None:
        return 404, {"error": f"no function {name!r}; have {', '.join(FUNCTIONS)}"}
    try:
        if name not in SCHEDULED:
            require_token(headers or {})
        return fn(body, rt or current())
    except HomeLabPiError as exc:
        if exc.status < 500:
            log.warning("%s rejected a call: %s", name, exc)
        else:
            log.error("%s failed: %s", name, exc)
        return exc.status, {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a handler must answer, never crash the worker
        log.exception("%s failed unexpectedly", name)
        return 500, {"error": f"internal error in {name}: {type(exc).__name__}: {exc}"}


def warm_up(name: str) -> None:
    """Load what `name` needs before the first request: a container's models load once, at start.

    Also imports torch from the main thread before any request thread does, which is where
    torch's bundled MKL is reliably able to initialise.
    """
    rt = current()
    if name == "transcribe":
        _ = rt.engine
    elif name in ("index", "answer"):
        _ = rt.embedder
        if name == "answer":
            _ = rt.reader


# Functions whose container is still loading its models (set by warm_up_in_background).
_ready: dict[str, threading.Event] = {}
RETRY_AFTER_SECONDS = 10


def warm_up_in_background(name: str) -> threading.Thread:
    """Load models while the template's server already listens: calls meanwhile get a clear
    503 with Retry-After instead of a refused connection or a timeout at the watchdog."""
    ready = _ready.setdefault(name, threading.Event())

    def run() -> None:
        t0 = time.perf_counter()
        try:
            warm_up(name)
            log.info("%s ready after %.1f s of model loading", name, time.perf_counter() - t0)
        except Exception:  # noqa: BLE001 - serve anyway; each call reports what is missing
            log.exception("%s: loading models failed; serving without them", name)
        finally:
            ready.set()

    thread = threading.Thread(target=run, name=f"warm-up-{name}", daemon=True)
    thread.start()
    return thread


def flask_handle(name: str, req: bytes | str) -> tuple[str, int, dict[str, str]]:
    """The python3-flask template's `handle(req)`, for `functions/<name>/handler.py`."""
    from flask import request  # the template calls handle() inside a Flask request

    ready = _ready.get(name)
    if ready is not None and not ready.is_set():
        return (json.dumps({"error": f"{name} is loading its models; retry in "
                                     f"{RETRY_AFTER_SECONDS} s"}), 503,
                {"Content-Type": "application/json", "Retry-After": str(RETRY_AFTER_SECONDS)})
    if request.method in ("HEAD", "GET"):  # liveness and health checks: no work
        return "", 200, {}
    body = req.encode() if isinstance(req, str) else req
    status, doc = invoke(name, body, request.headers)
    return json.dumps(doc, ensure_ascii=False), status, {"Content-Type": "application/json"}
