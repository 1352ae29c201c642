"""A directory that behaves like a MinIO bucket, including its notifications.

Layout under `root`:
    objects/<key>          the bytes
    meta/<key>.json        eTag, size, content type, user metadata
    tmp/                   writes in progress (renamed into place, so readers never see half a file)
The outbox (see `outbox.py`) gets an event record before the object becomes visible, so a crash
anywhere between "stored" and "delivered" is redelivered on restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from homelabpi.durable import file_digest, write_json
from homelabpi.errors import NotFound
from homelabpi.events import CREATED, REMOVED, make_record
from homelabpi.keys import validate_key
from homelabpi.store import ObjectInfo
from homelabpi.store.outbox import Outbox

log = logging.getLogger(__name__)
CHUNK = 1 << 20


class LocalStore:
    bucket = "homelabpi"

    def __init__(self, root: Path | str, outbox_dir: Path | str | None = None) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.meta = self.root / "meta"
        self.tmp = self.root / "tmp"
        for d in (self.objects, self.meta, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(outbox_dir) if outbox_dir is not None else None

    # -- paths -------------------------------------------------------------------------------
    def _paths(self, key: str) -> tuple[Path, Path]:
        validate_key(key)
        return self.objects / key, self.meta / f"{key}.json"

    # -- interface ---------------------------------------------------------------------------
    def put(self, key: str, data: bytes | BinaryIO, *,
            content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None) -> ObjectInfo:
        obj_path, meta_path = self._paths(key)
        metadata = {str(k).lower(): str(v) for k, v in (metadata or {}).items()}
        md5 = hashlib.md5()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    md5.update(data)
                    out.write(data)
                    size = len(data)
                else:
                    while chunk := data.read(CHUNK):
                        md5.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            info = ObjectInfo(key=key, etag=md5.hexdigest(), size=size, content_type=content_type,
                              metadata=metadata, modified=time.time())
            if self.outbox is not None:
                self.outbox.add(key, info.etag, make_record(
                    self.bucket, key, info.etag, size, CREATED,
                    metadata={"content-type": content_type, **metadata}))
            obj_path.parent.mkdir(parents=True, exist_ok=True)
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, obj_path)
            write_json(meta_path, {
                "etag": info.etag, "size": size, "content_type": content_type,
                "metadata": metadata, "modified": info.modified,
            })
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise
        log.debug("stored %s (%d bytes, etag %s)", key, size, info.etag)
        return info

    def stat(self, key: str) -> ObjectInfo:
        obj_path, meta_path = self._paths(key)
        if not obj_path.is_file():
            raise NotFound(f"no object {key!r} in the local store at {self.root}")
        try:
            meta = json.loads(meta_path.read_text())
        except (FileNotFoundError, ValueError):
            # The object landed but its sidecar did not (crash between the two renames).
            meta = {"etag": file_digest(obj_path), "size": obj_path.stat().st_size,
                    "content_type": "application/octet-stream", "metadata": {},
                    "modified": obj_path.stat().st_mtime}
        return ObjectInfo(key=key, etag=meta["etag"], size=meta["size"],
                          content_type=meta["content_type"], metadata=meta["metadata"],
                          modified=meta["modified"])

    def get(self, key: str) -> bytes:
        obj_path, _ = self._paths(key)
        try:
            return obj_path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"no object {key!r} in the local store at {self.root}") from None

    def get_file(self, key: str, path: str | Path) -> ObjectInfo:
        info = self.stat(key)
        obj_path, _ = self._paths(key)
        shutil.copyfile(obj_path, path)
        return info

    def path_of(self, key: str) -> Path:
        """The file behind a key: the embedded default opens shards and models in place."""
        return self._paths(key)[0]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.objects
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                key = Path(dirpath, name).relative_to(base).as_posix()
                if key.startswith(prefix):
                    try:
                        yield self.stat(key)
                    except NotFound:
                        continue  # deleted while listing

    def upload_etag(self, path: str | Path) -> str:
        return file_digest(path)  # always one piece here: the md5

    def delete(self, key: str) -> None:
        obj_path, meta_path = self._paths(key)
        try:
            info = self.stat(key)
        except NotFound:
            return
        if self.outbox is not None:
            self.outbox.add(key, "", make_record(self.bucket, key, info.etag, 0, REMOVED))
        for p in (obj_path, meta_path):
            p.unlink(missing_ok=True)
        log.info("deleted %s", key)

