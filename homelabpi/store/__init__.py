"""The object store: the source of truth for audio, transcripts and query logs.

Two implementations share this interface: `LocalStore` (a directory, the embedded default) and
`MinioStore` (the cluster). Keys are validated by `homelabpi.keys.validate_key` before any I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from homelabpi.settings import Settings


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    modified: float = 0.0


class ObjectStore(Protocol):
    bucket: str

    def put(self, key: str, data: bytes | BinaryIO, *, content_type: str = ...,
            metadata: dict[str, str] | None = None) -> ObjectInfo:
        """Store the object and emit an `s3:ObjectCreated:Put` event for it."""
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes; NotFound if absent."""
        ...

    def get_file(self, key: str, path: str) -> ObjectInfo:
        """Write the object to `path` (streamed; for large objects such as shards and models)."""
        ...

    def stat(self, key: str) -> ObjectInfo:
        """eTag, size and metadata; NotFound if absent."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects under `prefix`, in key order."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object (no error if already gone)."""
        ...

    def upload_etag(self, path: str) -> str:
        """The eTag `put` of the file at `path` would give: how an uploader confirms the
        store holds exactly that file."""
        ...


def open_store(settings: Settings) -> ObjectStore:
    """The store the settings name: MinIO when `HOMELABPI_S3_ENDPOINT` is set, else local."""
    if settings.s3_endpoint:
        from homelabpi.store.minio import MinioStore

        return MinioStore.from_settings(settings)
    from homelabpi.store.local import LocalStore

    return LocalStore(settings.store_dir, outbox_dir=settings.outbox_dir)
