"""Durable on-disk upload spool: a clip is deleted locally only after the store confirms it.

Layout under the spool directory::

    tmp/<clip>.<ext>        a clip being recorded
    tmp/<clip>.open.json    its key and metadata, written when recording starts (crash salvage)
    ready/<clip>.<ext>      a finished clip waiting for upload
    ready/<clip>.json       its sidecar (key, md5, metadata), written last: the commit marker
    failed/                 clips the store rejected as bad input (kept for a human, never lost)

The uploader checks `store.stat(key)` *before* putting (a crash after a put but before the local
delete must not produce a second put, hence a second bucket event) and again *after* (the eTag must
equal the local md5, or the multipart eTag of a large file), then deletes the audio and lastly the
sidecar. Keys are fixed when recording starts, so any retry rewrites the same object with the same
bytes: the store sees each clip once. Store outages back off exponentially (with jitter) and resume
by themselves; a restart picks up `ready/` as it is and salvages interrupted recordings from
`tmp/`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bot.clipwriter import repair_wav
from homelabpi.durable import file_digest, fsync_dir, write_json
from homelabpi.errors import BadInput, NotFound
from homelabpi.keys import validate_key
from homelabpi.store import ObjectStore

log = logging.getLogger(__name__)


@dataclass
class SpoolEntry:
    """One committed clip: its audio file and what the store must end up holding."""

    key: str
    file: str  # file name inside ready/
    md5: str
    size: int
    content_type: str
    metadata: dict[str, str]
    created: float
    sidecar: Path = field(default=Path(), compare=False)

    @property
    def path(self) -> Path:
        return self.sidecar.parent / self.file

    def to_json(self) -> dict:
        doc = asdict(self)
        doc.pop("sidecar")
        return doc




def md5_file(path: Path) -> tuple[str, int]:
    """(md5 hex, size) of a file: the md5 is the eTag the store must confirm."""
    return file_digest(path), path.stat().st_size


class Spool:
    """The spool directory. Safe for one recorder and one uploader in the same or other process."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.ready = self.root / "ready"
        self.failed = self.root / "failed"
        for d in (self.tmp, self.ready, self.failed):
            d.mkdir(parents=True, exist_ok=True)
        self.changed = threading.Event()  # set on commit: wakes an in-process uploader

    # -- recording side ------------------------------------------------------------------------
    def begin(self, clip_id: str, ext: str, key: str, metadata: dict[str, str],
              content_type: str) -> Path:
        """Reserve tmp/<clip>.<ext> and persist its key+metadata so a crash can salvage it."""
        validate_key(key)
        write_json(self.tmp / f"{clip_id}.open.json", {
            "key": key, "file": f"{clip_id}.{ext}", "content_type": content_type,
            "metadata": metadata, "created": time.time()})
        return self.tmp / f"{clip_id}.{ext}"

    def commit(self, path: Path) -> SpoolEntry:
        """Move a finished clip from tmp/ into ready/ with its sidecar (durably)."""
        clip_id = path.name.rsplit(".", 1)[0]
        open_doc = self.tmp / f"{clip_id}.open.json"
        doc = json.loads(open_doc.read_text())
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        md5, size = md5_file(path)
        target = self.ready / path.name
        os.replace(path, target)
        fsync_dir(self.ready)
        entry = SpoolEntry(key=doc["key"], file=path.name, md5=md5, size=size,
                           content_type=doc["content_type"], metadata=doc["metadata"],
                           created=doc["created"], sidecar=self.ready / f"{clip_id}.json")
        write_json(entry.sidecar, entry.to_json())
        open_doc.unlink(missing_ok=True)
        self.changed.set()
        log.info("spooled %s (%d bytes)", entry.key, size)
        return entry

    def abandon(self, path: Path) -> None:
        """Forget a clip being recorded (e.g. too short to be speech)."""
        clip_id = path.name.rsplit(".", 1)[0]
        path.unlink(missing_ok=True)
        (self.tmp / f"{clip_id}.open.json").unlink(missing_ok=True)

    def recover(self, active: set[str] = frozenset()) -> int:
        """Commit recordings a crash left in tmp/ (truncated but playable); returns how many.

        Call at startup, before recording begins (`active` names clip ids still being written).
        """
        n = 0
        for open_doc in sorted(self.tmp.glob("*.open.json")):
            clip_id = open_doc.name[: -len(".open.json")]
            if clip_id in active:
                continue
            try:
                doc = json.loads(open_doc.read_text())
                audio = self.tmp / doc["file"]
            except (ValueError, KeyError, OSError):
                log.warning("unreadable spool record %s; moving aside", open_doc)
                open_doc.rename(self.failed / open_doc.name)
                continue
            if not audio.exists() or audio.stat().st_size == 0:
                self.abandon(audio)
                continue
            if audio.suffix == ".wav":
                repair_wav(audio)
            self.commit(audio)
            n += 1
        return n

    # -- upload side ---------------------------------------------------------------------------
    def pending(self) -> list[SpoolEntry]:
        """Committed clips in recording order."""
        out = []
        for sidecar in sorted(self.ready.glob("*.json")):
            if sidecar.name.startswith("."):
                continue
            try:
                doc = json.loads(sidecar.read_text())
                out.append(SpoolEntry(**doc, sidecar=sidecar))
            except (ValueError, TypeError, OSError):
                log.error("unreadable sidecar %s; moving it to failed/", sidecar)
                sidecar.rename(self.failed / sidecar.name)
        return out

    def remove(self, entry: SpoolEntry) -> None:
        """Delete an uploaded clip: audio first, sidecar last (a crash between is harmless)."""
        entry.path.unlink(missing_ok=True)
        entry.sidecar.unlink(missing_ok=True)
        fsync_dir(self.ready)

    def quarantine(self, entry: SpoolEntry, reason: str) -> None:
        """Move a clip the store will never accept to failed/, with the reason."""
        if entry.path.exists():
            os.replace(entry.path, self.failed / entry.file)
        doc = entry.to_json() | {"reason": reason}
        write_json(self.failed / entry.sidecar.name, doc)
        entry.sidecar.unlink(missing_ok=True)

    def purge(self, match: Callable[[SpoolEntry], bool]) -> list[SpoolEntry]:
        """Delete committed, not yet uploaded clips that `match` selects (e.g. /forget)."""
        gone = [entry for entry in self.pending() if match(entry)]
        for entry in gone:
            self.remove(entry)
        return gone

    def __len__(self) -> int:
        return len(self.pending())


@dataclass
class UploadStats:
    uploaded: int = 0
    already_present: int = 0
    failures: int = 0
    mismatches: int = 0
    quarantined: int = 0
    lost: int = 0
    consecutive_failures: int = 0
    last_error: str = ""


class Uploader:
    """Drains a spool into an object store with retry and exponential backoff."""

    def __init__(self, spool: Spool, store: ObjectStore, *, base_delay: float = 1.0,
                 max_delay: float = 300.0, rng: Callable[[], float] = random.random) -> None:
        self.spool = spool
        self.store = store
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._rng = rng
        self.stats = UploadStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_file = None

    # -- one clip ------------------------------------------------------------------------------
    def _confirmed(self, entry: SpoolEntry) -> bool:
        """The store holds exactly this clip: its eTag is the one uploading the file gives (the
        md5, or for a file the store sent in parts, the multipart eTag)."""
        try:
            etag = self.store.stat(entry.key).etag.strip('"')
        except NotFound:
            return False
        if etag == entry.md5:
            return True
        return "-" in etag and entry.path.exists() and etag == self.store.upload_etag(entry.path)

    def upload(self, entry: SpoolEntry) -> str:
        """Make the store hold `entry`, then delete it locally. Raises on transient failure."""
        if self._confirmed(entry):  # e.g. we crashed after the put, before the local delete
            self.spool.remove(entry)
            self.stats.already_present += 1
            return "present"
        if not entry.path.exists():
            # Audio gone but sidecar left and the store does not have it: nothing to send.
            log.error("clip %s is missing from the spool and the store; giving up on it",
                      entry.key)
            self.spool.quarantine(entry, "audio file missing and not in store")
            self.stats.lost += 1
            return "lost"
        with open(entry.path, "rb") as f:
            self.store.put(entry.key, f, content_type=entry.content_type,
                           metadata=dict(entry.metadata))
        if not self._confirmed(entry):
            self.stats.mismatches += 1
            raise OSError(f"store does not confirm {entry.key} with etag {entry.md5} after put")
        self.spool.remove(entry)
        self.stats.uploaded += 1
        return "uploaded"

    # -- the queue -----------------------------------------------------------------------------
    def run_once(self) -> bool:
        """Try every pending clip in order; False if a transient failure stopped the pass."""
        for entry in self.spool.pending():
            if self._stop.is_set():
                return True
            try:
                self.upload(entry)
            except BadInput as exc:
                log.error("store rejected %s: %s; moved to failed/", entry.key, exc)
                self.spool.quarantine(entry, str(exc))
                self.stats.quarantined += 1
            except Exception as exc:  # noqa: BLE001 - store down, network, disk: retry later
                self.stats.failures += 1
                self.stats.consecutive_failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("upload of %s failed (%s); will retry", entry.key,
                            self.stats.last_error)
                return False
        self.stats.consecutive_failures = 0
        return True

    def next_delay(self) -> float:
        """Backoff after `consecutive_failures` failures: base*2^(n-1), capped, with jitter."""
        n = max(1, self.stats.consecutive_failures)
        delay = min(self.max_delay, self.base_delay * (2 ** min(n - 1, 30)))
        return delay * (0.5 + 0.5 * self._rng())

    def run(self, idle_poll: float = 5.0) -> None:
        """Upload until `stop()`: immediately on new clips, with backoff while the store is down."""
        self._acquire_lock()
        try:
            while not self._stop.is_set():
                self.spool.changed.clear()
                ok = self.run_once()
                wait = idle_poll if ok else self.next_delay()
                if ok:
                    self.spool.changed.wait(wait)
                else:
                    self._stop.wait(wait)
        finally:
            self._release_lock()

    def start(self) -> threading.Thread:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="clip-uploader", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        self.spool.changed.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _acquire_lock(self) -> None:
        """One uploader per spool, across processes (a killed process releases it)."""
        self._lock_file = open(self.spool.root / ".uploader.lock", "w")  # noqa: SIM115
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def snapshot(self) -> dict[str, int | str]:
        """Counters for /status, plus the queue length."""
        return asdict(self.stats) | {"queued": len(self.spool)}


def main(argv: list[str] | None = None) -> int:
    """`python -m bot.spool SPOOL_DIR STORE_DIR [OUTBOX_DIR]`: drain a spool into a LocalStore."""
    import sys

    from homelabpi.store.local import LocalStore

    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print(main.__doc__, file=sys.stderr)
        return 2
    store = LocalStore(args[1], outbox_dir=args[2] if len(args) == 3 else None)
    up = Uploader(Spool(args[0]), store)
    up._acquire_lock()
    try:
        ok = up.run_once()
    finally:
        up._release_lock()
    print(json.dumps(up.snapshot()))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
