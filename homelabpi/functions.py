"""The three functions as plain callables: body in, (status, JSON document) out.

`functions/<name>/handler.py` (OpenFaaS python3-flask) and the local gateway both call
`invoke`, so the cluster and the embedded default run the same code for the same payloads.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from homelabpi import answer as answering
from homelabpi import retrieval, transcripts
from homelabpi.auth import require_token
from homelabpi.errors import BadInput, HomeLabPiError, NotFound
from homelabpi.events import parse_events
from homelabpi.index import indexer
from homelabpi.index.shards import open_readonly
from homelabpi.keys import new_id, query_key, validate_id
from homelabpi.runtime import Runtime, current
from homelabpi.transcribe import transcribe_object

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
    def one(name: str, key: str, etag: str) -> dict:
        if not name.startswith("s3:ObjectCreated:") or not key.startswith("audio/"):
            return {"key": key, "outcome": "ignored"}
        return transcribe_object(rt, key)

    return _per_record(body, one)


def index(body: bytes, rt: Runtime) -> Result:
    def one(name: str, key: str, etag: str) -> dict:
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
        return indexer.index_transcript(rt.shards, key, info.etag, doc).__dict__

    return _per_record(body, one)


def answer(body: bytes, rt: Runtime) -> Result:
    """Reads for a guild: `op` is ask (default), search, sessions, transcript or status."""
    req = _json(body, "answer request")
    if not isinstance(req, dict):
        raise BadInput("answer request must be a JSON object such as "
                       '{"question": "…", "guild": "…"}')
    op = req.get("op", "ask")
    if op == "transcript" and not req.get("guild"):
        return 200, _transcript(rt, str(req.get("session", "")), rt.guilds())
    guild = validate_id(str(req.get("guild", "")), "guild")
    conns = [open_readonly(p) for p in rt.shard_paths(guild)]
    try:
        if op == "ask":
            return 200, _ask(rt, conns, guild, req)
        if op == "search":
            text = _text(req, "text")
            limit = max(1, min(int(req.get("limit", 10)), 100))
            return 200, {"hits": [dict(h.citation(), score=round(h.score, 3))
                                  for h, _ in retrieval.search(conns, text, limit)]}
        if op == "sessions":
            return 200, {"sessions": _sessions(conns)}
        if op == "transcript":
            return 200, _transcript(rt, str(req.get("session", "")), [guild])
        if op == "status":
            return 200, {"clips": _status(conns, [str(k) for k in req.get("keys", [])])}
        raise BadInput(f"unknown op {op!r}; use ask, search, sessions, transcript or status")
    finally:
        for c in conns:
            c.close()


def _ask(rt: Runtime, conns: list, guild: str, req: dict) -> dict:
    question = _text(req, "question")
    t0 = time.perf_counter()
    result = answering.answer(conns, question).as_dict()
    latency = int((time.perf_counter() - t0) * 1000)
    now = datetime.now(UTC)
    qid = new_id("q", now)
    doc = {"id": qid, "guild": guild, "question": question, "asker": str(req.get("asker") or ""),
           "asked_at": transcripts.iso(now), "latency_ms": latency, **result}
    try:
        rt.store.put(query_key(guild, qid, now), json.dumps(doc, ensure_ascii=False).encode(),
                     content_type="application/json")
    except HomeLabPiError as exc:  # the answer matters more than its log entry
        log.warning("could not log query %s for guild %s: %s", qid, guild, exc)
    log.info("answered %s for guild %s in %d ms (%s, confidence %.2f)", qid, guild, latency,
             result["mode"], result["confidence"])
    return result


def _sessions(conns: list) -> list[dict]:
    sessions: dict[str, dict] = {}
    for conn in conns:
        for row in conn.execute(
                "SELECT se.id, ch.name, se.started_at, se.ended_at, "
                "(SELECT group_concat(DISTINCT sp.name) FROM segment s JOIN speaker sp "
                " ON sp.id = s.speaker_id WHERE s.session_id = se.id), "
                "(SELECT count(*) FROM clip c WHERE c.session_id = se.id), "
                "(SELECT count(*) FROM clip c WHERE c.session_id = se.id AND c.status != 'ok'), "
                "(SELECT count(*) FROM segment s WHERE s.session_id = se.id) "
                "FROM session se JOIN channel ch ON ch.id = se.channel_id"):
            s = sessions.setdefault(row[0], {"session": row[0], "channel": row[1],
                                             "started_at": row[2], "ended_at": row[3],
                                             "speakers": set(), "clips": 0, "failed": 0,
                                             "segments": 0})
            s["started_at"], s["ended_at"] = min(s["started_at"], row[2]), max(s["ended_at"],
                                                                                 row[3])
            s["speakers"] |= set((row[4] or "").split(",")) - {""}
            s["clips"] += row[5]
            s["failed"] += row[6]
            s["segments"] += row[7]
    out = sorted(sessions.values(), key=lambda s: s["started_at"], reverse=True)
    for s in out:
        s["speakers"] = sorted(s["speakers"])
        s["started_at"] = retrieval.iso_epoch(s["started_at"])
        s["ended_at"] = retrieval.iso_epoch(s["ended_at"])
    return out


def _transcript(rt: Runtime, session: str, guilds: list[str]) -> dict:
    validate_id(session, "session")
    segments: list[tuple[float, int, dict]] = []
    for guild in guilds:
        for path in rt.shard_paths(guild):
            conn = open_readonly(path)
            try:
                for row in conn.execute(retrieval.SELECT + " WHERE s.session_id = ?", (session,)):
                    seg = retrieval.seg(row)
                    segments.append((seg.start, seg.id, {
                        "speaker": seg.speaker, "start": retrieval.iso_epoch(seg.start),
                        "end": retrieval.iso_epoch(seg.end), "text": seg.text,
                        "words": seg.words}))
            finally:
                conn.close()
        if segments:
            segments.sort(key=lambda s: s[:2])
            return {"session": session, "guild": guild, "segments": [s[2] for s in segments]}
    raise NotFound(f"no session {session!r}; list sessions with 'homelabpi sessions --guild ID'")


def _status(conns: list, keys: list[str]) -> dict:
    found: dict[str, dict] = {}
    for conn in conns:
        for k in keys:
            row = conn.execute("SELECT c.status, c.error, (SELECT count(*) FROM segment s WHERE "
                               "s.clip_id = c.id) FROM clip c WHERE c.key = ?", (k,)).fetchone()
            if row:
                found[k] = {"status": row[0], "error": row[1], "segments": row[2]}
    return found


def _json(body: bytes, what: str):
    try:
        return json.loads(body or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{what} is not JSON: {exc}") from exc


def _text(req: dict, field: str) -> str:
    value = req.get(field)
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"'{field}' is required and must be non-empty text")
    if len(value) > 2000:
        raise BadInput(f"'{field}' is longer than 2000 characters")
    return value.strip()


FUNCTIONS: dict[str, Callable[[bytes, Runtime], Result]] = {
    "transcribe": transcribe, "index": index, "answer": answer,
}


def invoke(name: str, body: bytes, headers: Mapping[str, str] | None = None,
           rt: Runtime | None = None) -> Result:
    """Authenticate, run a function, and turn any failure into a status and a message."""
    fn = FUNCTIONS.get(name)
    if fn is None:
        return 404, {"error": f"no function {name!r}; have {', '.join(FUNCTIONS)}"}
    try:
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


def flask_handle(name: str, req: bytes | str) -> tuple[str, int, dict[str, str]]:
    """The python3-flask template's `handle(req)`, for `functions/<name>/handler.py`."""
    from flask import request  # the template calls handle() inside a Flask request

    if request.method in ("HEAD", "GET"):  # MinIO's probe and health checks: no work
        return "", 200, {}
    body = req.encode() if isinstance(req, str) else req
    status, doc = invoke(name, body, request.headers)
    return json.dumps(doc, ensure_ascii=False), status, {"Content-Type": "application/json"}
