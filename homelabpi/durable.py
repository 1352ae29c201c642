"""Crash-safe files: the outbox, the local store, the upload spool and model caches rely on them.

A write is visible whole or not at all (temp file + rename), and `fsync` makes "stored" mean
stored: a power cut after `write_json` returns loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Persist a directory entry (a rename or a new file) itself, not just the file's bytes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, doc: object) -> None:
    """Replace `path` with `doc` as JSON, atomically and durably."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def file_digest(path: Path | str, algorithm: str = "md5") -> str:
    """Hex digest of a file, streamed (md5 is what S3 and MinIO use as a single-part eTag)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def multipart_etag(path: Path | str, part_size: int) -> str:
    """The eTag S3 and MinIO give a multipart upload of the file in `part_size` parts: the md5
    of the parts' binary md5s, then `-<parts>`. Lets an uploader confirm a large upload."""
    digests = []
    with open(path, "rb") as f:
        while chunk := f.read(part_size):
            digests.append(hashlib.md5(chunk).digest())
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
