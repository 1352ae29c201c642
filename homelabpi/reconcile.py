"""The reconciler: find what a lost event left undone and re-drive it, idempotently and bounded.

Events are for latency, this is for correctness. On the cluster an event can be lost after
MinIO's `queue_dir` has done its part: the queue-worker calls a function once and drops the call
on any error or timeout (openfaas/nats-queue-worker main.go: no retry in OpenFaaS CE). So on a
schedule (cron-connector on faasd, a timer inside `homelabpi up`) this compares the store, which
is the truth, with what was derived from it:

- audio with no transcript, or a transcript older than the audio → `transcribe`;
- transcripts and queries the index lacks, or holds at another eTag → `index` (created);
- clips in the index whose transcript is gone → `index` (removed).

Every consumer is idempotent on key + eTag, so re-driving something an in-flight event also
delivers changes nothing. Transcription runs first and the index work is computed after it, so
a clip whose two events were both lost is finished in one run. `limit` bounds the calls per run
and `budget` the seconds; what is left waits for the next run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from homelabpi.errors import BadInput
from homelabpi.events import CREATED, REMOVED, make_event
from homelabpi.keys import ClipKey, validate_id
from homelabpi.runtime import Runtime
from homelabpi.store import ObjectInfo

log = logging.getLogger(__name__)

# (function, body) -> HTTP status of the call.
Call = Callable[[str, bytes], int]
INDEX_BATCH = 20  # records per index call: one shard publish per batch, not per record


@dataclass
class Report:
    transcribed: list[str] = field(default_factory=list)
    indexed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    left: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def missing_transcripts(rt: Runtime) -> list[ObjectInfo]:
    """Audio objects with no transcript at all, or one written before the audio was."""
    transcripts = {o.key: o for o in rt.store.list("transcripts/")}
    out = []
    for audio in rt.store.list("audio/"):
        try:
            tkey = ClipKey.parse(audio.key).transcript
        except BadInput as exc:
            log.warning("reconcile skips %s: %s", audio.key, exc)
            continue
        done = transcripts.get(tkey)
        if done is None or done.modified < audio.modified:
            out.append(audio)
    return out


def _indexed(rt: Runtime, guild: str) -> dict[str, dict[str, list[str]]]:
    """{"clip"|"query": {key: [etag, ...]}} over every shard of `guild`."""
    found: dict[str, dict[str, list[str]]] = {"clip": {}, "query": {}}
    with rt.guild_readers(guild) as conns:
        for conn in conns:
            for table in found:
                for key, etag in conn.execute(f"SELECT key, etag FROM {table}"):  # noqa: S608
                    found[table].setdefault(key, []).append(etag)
    return found


def missing_from_index(rt: Runtime) -> list[tuple[str, ObjectInfo]]:
    """(event name, object) for every transcript or query the index does not hold as stored,
    and every indexed clip whose transcript is gone."""
    stored: dict[str, dict[str, ObjectInfo]] = {}
    for prefix in ("transcripts/", "queries/"):
        for obj in rt.store.list(prefix):
            parts = obj.key.split("/")
            if len(parts) < 3 or not obj.key.endswith(".json"):
                continue
            try:
                guild = validate_id(parts[1], "guild")
            except BadInput:
                continue
            stored.setdefault(guild, {})[obj.key] = obj
    guilds = set(stored) | set(rt.guilds())
    out: list[tuple[str, ObjectInfo]] = []
    for guild in sorted(guilds):
        objects = stored.get(guild, {})
        indexed = _indexed(rt, guild)
        for key, obj in objects.items():
            table = "clip" if key.startswith("transcripts/") else "query"
            if indexed[table].get(key) != [obj.etag]:
                out.append((CREATED, obj))
        for key, etags in indexed["clip"].items():
            if key not in objects:
                out.append((REMOVED, ObjectInfo(key=key, etag=etags[0], size=0)))
    return out


def reconcile(rt: Runtime, call: Call, *, limit: int = 50, budget: float = 240.0) -> Report:
    """One bounded pass: re-drive transcription first, then the index."""
    report = Report()
    deadline = time.monotonic() + budget
    calls = 0

    def spend() -> bool:
        return calls < limit and time.monotonic() < deadline

    todo = missing_transcripts(rt)
    for n, audio in enumerate(todo):
        if not spend():
            report.left += len(todo) - n
            break
        calls += 1
        body = make_event(bucket=rt.store.bucket, key=audio.key, etag=audio.etag,
                          size=audio.size)
        status = call("transcribe", body)
        if 200 <= status < 300:
            report.transcribed.append(audio.key)
        else:
            report.failed.append({"key": audio.key, "function": "transcribe", "status": status})
    work = missing_from_index(rt)
    for start in range(0, len(work), INDEX_BATCH):
        if not spend():
            report.left += len(work) - start
            break
        calls += 1
        batch = work[start:start + INDEX_BATCH]
        status = call("index", _events(rt.store.bucket, batch))
        for name, obj in batch:
            if not 200 <= status < 300:
                report.failed.append({"key": obj.key, "function": "index", "status": status})
            elif name == REMOVED:
                report.removed.append(obj.key)
            else:
                report.indexed.append(obj.key)
    log.info("reconcile: %d transcribed, %d indexed, %d removed, %d failed, %d left",
             len(report.transcribed), len(report.indexed), len(report.removed),
             len(report.failed), report.left)
    return report


def _events(bucket: str, batch: list[tuple[str, ObjectInfo]]) -> bytes:
    """One notification body with a record per object, as MinIO batches them."""
    import json

    records = [json.loads(make_event(bucket=bucket, key=o.key, etag=o.etag, size=o.size,
                                     name=name))["Records"][0] for name, o in batch]
    return json.dumps({"Records": records}).encode()


def in_process(rt: Runtime) -> Call:
    """Call the functions in this process (the embedded default)."""
    from homelabpi.auth import auth_header
    from homelabpi.functions import invoke

    def call(function: str, body: bytes) -> int:
        return invoke(function, body, auth_header(), rt)[0]

    return call


def through_gateway(gateway: str, timeout: float = 300.0) -> Call:
    """Call the functions synchronously through an OpenFaaS gateway (`/function/<name>`), so
    the reconciler learns each call's outcome instead of trusting the queue-worker."""
    import requests

    from homelabpi.auth import auth_header

    def call(function: str, body: bytes) -> int:
        try:
            resp = requests.post(f"{gateway.rstrip('/')}/function/{function}", data=body,
                                 timeout=timeout,
                                 headers={"Content-Type": "application/json", **auth_header()})
        except requests.RequestException as exc:
            log.warning("reconcile could not call %s through %s: %s", function, gateway, exc)
            return 503
        return resp.status_code

    return call


class Timer(threading.Thread):
    """Runs `reconcile` every `interval` seconds in the embedded default's `up`."""

    def __init__(self, rt: Runtime, interval: float, limit: int) -> None:
        super().__init__(name="homelabpi-reconcile", daemon=True)
        self.rt, self.interval, self.limit = rt, interval, limit
        self.stopping = threading.Event()
        self.runs = 0

    def run(self) -> None:
        call = in_process(self.rt)
        while not self.stopping.wait(self.interval):
            try:
                reconcile(self.rt, call, limit=self.limit, budget=max(self.interval, 60.0))
            except Exception:  # noqa: BLE001 - the next run tries again
                log.exception("reconcile run failed")
            self.runs += 1
