"""A durable, ordered outbox of bucket events: the local store's stand-in for MinIO's `queue_dir`.

Each event is one fsync'd JSON file named by time, written *before* the object becomes visible.
Delivery removes a file only after the consumer accepted it, so delivery is at least once; the
consumers are idempotent (object key + eTag), so at least once is enough. A record whose object
never landed (crash mid-put) is dropped after a grace period; one whose object was overwritten
or deleted since is dropped at once, because the later write has a record of its own.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from homelabpi.durable import fsync_dir
from homelabpi.errors import NotFound
from homelabpi.events import target_for

if TYPE_CHECKING:
    from homelabpi.store import ObjectStore

log = logging.getLogger(__name__)

# send(function_name, body) delivers one notification; it raises to leave the record for later.
Sender = Callable[[str, bytes], None]


class Outbox:
    def __init__(self, directory: Path | str, grace_seconds: float = 30.0) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.grace = grace_seconds

    def add(self, key: str, etag: str, record: dict) -> Path:
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}.json"
        doc = {"key": key, "etag": etag, "added": time.time(),
               "body": {"EventName": record["eventName"],
                        "Key": f"{record['s3']['bucket']['name']}/{record['s3']['object']['key']}",
                        "Records": [record]}}
        tmp = self.dir / f".{name}.tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        path = self.dir / name
        os.replace(tmp, path)
        fsync_dir(self.dir)
        return path

    def pending(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("*.json") if not p.name.startswith("."))

    def __len__(self) -> int:
        return len(self.pending())

    @contextmanager
    def _locked(self):
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def deliver(self, send: Sender, store: ObjectStore, max_passes: int = 1000) -> int:
        """Deliver everything pending, in order, until the outbox is empty or a send fails.

        Records added while delivering (a handler that stores a transcript) are picked up in the
        same call. Returns how many were delivered.
        """
        delivered = 0
        with self._locked():
            for _ in range(max_passes):
                batch = self.pending()
                if not batch:
                    break
                progressed = False
                keys = [_key_of(p) for p in batch]
                for i, path in enumerate(batch):
                    superseded = keys[i] in keys[i + 1:]
                    outcome = self._deliver_one(path, send, store, superseded)
                    if outcome == "wait":
                        return delivered
                    if outcome == "failed":
                        return delivered
                    delivered += outcome == "sent"
                    progressed = True
                if not progressed:
                    break
        return delivered

    def _deliver_one(self, path: Path, send: Sender, store: ObjectStore,
                     superseded: bool) -> str:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return "skipped"
        except ValueError:
            log.error("outbox record %s is unreadable; moving it aside", path.name)
            path.rename(path.with_suffix(".bad"))
            return "skipped"
        key, etag = doc["key"], doc["etag"]
        record = doc["body"]["Records"][0]
        target = target_for(key, record["eventName"])
        if target is None:
            path.unlink(missing_ok=True)
            return "skipped"
        if etag:  # a creation: only deliver what is really stored
            try:
                current = store.stat(key).etag
            except NotFound:
                current = None
            if current != etag:
                if not superseded and time.time() - doc["added"] < self.grace:
                    return "wait"  # the put may still be in progress
                log.info("dropping event for %s (etag %s): object %s", key, etag,
                         "missing" if current is None else f"since replaced by {current}")
                path.unlink(missing_ok=True)
                return "skipped"
        try:
            send(target, json.dumps(doc["body"]).encode())
        except Exception as exc:  # noqa: BLE001 - any failure leaves the record for a retry
            log.warning("could not deliver %s event for %s to %s: %s; will retry",
                        record["eventName"], key, target, exc)
            return "failed"
        path.unlink(missing_ok=True)
        return "sent"


def _key_of(path: Path) -> str | None:
    try:
        return json.loads(path.read_text())["key"]
    except (OSError, ValueError, KeyError):
        return None
