"""The object store on the cluster: a MinIO bucket, through the `minio` client.

Same interface and same observable behaviour as `LocalStore` (lowercase user-metadata keys, eTags
without quotes, NotFound for absent keys), with one difference by design: `put` emits no event.
MinIO itself sends the bucket notification (webhook with `queue_dir`, see `faasd/`), so emitting
one here would deliver every event twice.

User metadata travels as `x-amz-meta-*` HTTP headers, which must be ASCII. Values are therefore
percent-encoded on the way in and decoded on the way out, so a display name such as "Zoë" survives
the round trip exactly as it does in the local store.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import quote, unquote, urlsplit

from homelabpi.durable import file_digest, multipart_etag
from homelabpi.errors import HomeLabPiError, NotFound, Unavailable
from homelabpi.keys import validate_key
from homelabpi.store import ObjectInfo

if TYPE_CHECKING:
    from minio import Minio

    from homelabpi.settings import Settings

log = logging.getLogger(__name__)

ACCESS_KEY_SECRET = "homelabpi-s3-access-key"
SECRET_KEY_SECRET = "homelabpi-s3-secret-key"
META_PREFIX = "x-amz-meta-"
PART_SIZE = 16 * 1024 * 1024  # multipart chunk for streams of unknown length (S3 minimum is 5 MiB)
CHUNK = 1 << 20
_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}
# Characters that may stay literal in a header value; everything else (and '%') is escaped.
_META_SAFE = " !\"#$&'()*+,-./:;<=>?@[]^_`{|}~"


def split_endpoint(endpoint: str, secure: bool = False) -> tuple[str, bool]:
    """`host:port` and whether to use TLS, from `host:port` or `http(s)://host:port[/]`."""
    endpoint = endpoint.strip()
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"S3 endpoint {endpoint!r} must look like http://host:9000 or host:9000")
        if parts.path not in ("", "/"):
            raise ValueError(f"S3 endpoint {endpoint!r} must not have a path; the bucket is "
                             "HOMELABPI_S3_BUCKET")
        return parts.netloc, parts.scheme == "https"
    return endpoint.rstrip("/"), secure


def _encode_meta(metadata: Mapping[str, str] | None) -> dict[str, str]:
    out = {}
    for k, v in (metadata or {}).items():
        name = str(k).lower()
        if name.startswith(META_PREFIX):
            name = name[len(META_PREFIX):]
        if not name or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in name):
            raise ValueError(f"metadata key {k!r} must be ASCII letters, digits, '-', '_' or '.'")
        out[META_PREFIX + name] = quote(str(v), safe=_META_SAFE)
    return out


def _decode_meta(headers: Mapping[str, str] | None) -> dict[str, str]:
    out = {}
    for k, v in (headers or {}).items():
        name = str(k).lower()
        if name.startswith(META_PREFIX):
            out[name[len(META_PREFIX):]] = unquote(str(v))
    return out


def _etag(value: str | None) -> str:
    return (value or "").strip().strip('"')


class MinioStore:
    """A bucket on MinIO (or any S3 endpoint) behind the `ObjectStore` interface."""

    def __init__(self, endpoint: str, access_key: str | None, secret_key: str | None, *,
                 bucket: str = "homelabpi", secure: bool = False, region: str | None = None,
                 client: Minio | None = None, part_size: int = PART_SIZE) -> None:
        from minio import Minio

        self.endpoint, self.secure = split_endpoint(endpoint, secure)
        self.bucket = bucket
        self.part_size = part_size  # files larger than this go up in parts of this size
        self.region = region or "us-east-1"
        # A region given up front spares one GetBucketLocation round trip per process.
        self.client = client or Minio(self.endpoint, access_key=access_key, secret_key=secret_key,
                                      secure=self.secure, region=self.region)

    @classmethod
    def from_settings(cls, settings: Settings) -> MinioStore:
        """Credentials from the settings, else from the OpenFaaS secrets mounted in a function."""
        from homelabpi.auth import read_secret

        if not settings.s3_endpoint:
            raise ValueError("HOMELABPI_S3_ENDPOINT is not set")
        access = settings.s3_access_key or read_secret(ACCESS_KEY_SECRET)
        secret = settings.s3_secret_key or read_secret(SECRET_KEY_SECRET)
        if not access or not secret:
            raise ValueError(
                "HOMELABPI_S3_ENDPOINT is set but the S3 credentials are not: set "
                "HOMELABPI_S3_ACCESS_KEY/HOMELABPI_S3_SECRET_KEY or create the OpenFaaS secrets "
                f"{ACCESS_KEY_SECRET!r} and {SECRET_KEY_SECRET!r}")
        return cls(settings.s3_endpoint, access, secret, bucket=settings.s3_bucket,
                   secure=settings.s3_secure, region=settings.s3_region)

    def __repr__(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"MinioStore({scheme}://{self.endpoint}/{self.bucket})"

    # -- errors ------------------------------------------------------------------------------
    def _translate(self, exc: Exception, key: str) -> HomeLabPiError:
        from minio.error import S3Error

        if isinstance(exc, S3Error):
            if exc.code in _NOT_FOUND_CODES:
                return NotFound(f"no object {key!r} in bucket {self.bucket!r} at {self.endpoint}")
            return Unavailable(f"S3 error on {key!r} at {self.endpoint}: {exc.code}: {exc.message}")
        return Unavailable(f"cannot reach the object store at {self.endpoint} ({key!r}): {exc}")

    def _call(self, key: str, fn, *args, **kwargs):
        from minio.error import MinioException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except (MinioException, HTTPError, OSError) as exc:
            raise self._translate(exc, key) from exc

    # -- bucket ------------------------------------------------------------------------------
    def ensure_bucket(self) -> bool:
        """Create the bucket if missing; True when it was created (setup and tests)."""
        if self._call(self.bucket, self.client.bucket_exists, self.bucket):
            return False
        self._call(self.bucket, self.client.make_bucket, self.bucket)
        log.info("created bucket %s at %s", self.bucket, self.endpoint)
        return True

    # -- interface ---------------------------------------------------------------------------
    def put(self, key: str, data: bytes | BinaryIO, *,
            content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None) -> ObjectInfo:
        """Upload; MinIO (not this method) emits the `s3:ObjectCreated:Put` notification."""
        validate_key(key)
        headers = _encode_meta(metadata)
        if isinstance(data, bytes | bytearray | memoryview):
            stream: BinaryIO = io.BytesIO(bytes(data))
            length, part_size = len(data), 0
        else:
            stream, length, part_size = data, _remaining(data), self.part_size
        result = self._call(key, self.client.put_object, self.bucket, key, stream, length,
                            content_type=content_type, metadata=headers, part_size=part_size)
        size = length if length >= 0 else self.stat(key).size
        log.debug("stored %s (%d bytes, etag %s)", key, size, result.etag)
        return ObjectInfo(key=key, etag=_etag(result.etag), size=size, content_type=content_type,
                          metadata=_decode_meta(headers), modified=_now())

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        obj = self._call(key, self.client.stat_object, self.bucket, key)
        return ObjectInfo(key=key, etag=_etag(obj.etag), size=int(obj.size or 0),
                          content_type=obj.content_type or "application/octet-stream",
                          metadata=_decode_meta(obj.metadata),
                          modified=obj.last_modified.timestamp() if obj.last_modified else 0.0)

    def get(self, key: str) -> bytes:
        validate_key(key)
        resp = self._call(key, self.client.get_object, self.bucket, key)
        try:
            return self._call(key, resp.read)
        finally:
            resp.close()
            resp.release_conn()

    def get_file(self, key: str, path: str | Path) -> ObjectInfo:
        """Stream to a temp file beside `path`, then rename: a reader never sees half a file.

        The returned info comes from the same response as the bytes, so eTag and content agree
        even if the object is replaced meanwhile.
        """
        validate_key(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        resp = self._call(key, self.client.get_object, self.bucket, key)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                for chunk in self._call(key, resp.stream, CHUNK):
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            resp.close()
            resp.release_conn()
        headers = resp.headers
        return ObjectInfo(key=key, etag=_etag(headers.get("ETag")), size=size,
                          content_type=headers.get("Content-Type") or "application/octet-stream",
                          metadata=_decode_meta(headers), modified=_http_time(
                              headers.get("Last-Modified")))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects under `prefix` in key order (S3 lists lexicographically). No user metadata:
        a listing does not carry it; `stat` a key when it is needed."""
        from minio.error import MinioException
        from urllib3.exceptions import HTTPError

        try:
            for obj in self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True):
                if obj.is_dir:
                    continue
                modified = obj.last_modified.timestamp() if obj.last_modified else 0.0
                yield ObjectInfo(key=obj.object_name, etag=_etag(obj.etag),
                                 size=int(obj.size or 0), modified=modified)
        except (MinioException, HTTPError, OSError) as exc:
            raise self._translate(exc, prefix) from exc

    def delete(self, key: str) -> None:
        validate_key(key)
        self._call(key, self.client.remove_object, self.bucket, key)
        log.info("deleted %s", key)

    def upload_etag(self, path: str | Path) -> str:
        """A file up to `part_size` goes up in one PUT (eTag: its md5), a larger one in parts."""
        if os.path.getsize(path) <= self.part_size:
            return file_digest(path)
        return multipart_etag(path, self.part_size)

    def presign(self, key: str, expires: timedelta | float = timedelta(hours=1)) -> str:
        """A time-limited GET URL (a clip link in a Discord reply) that needs no credentials."""
        validate_key(key)
        if not isinstance(expires, timedelta):
            expires = timedelta(seconds=float(expires))
        return self._call(key, self.client.presigned_get_object, self.bucket, key, expires=expires)


def _remaining(f: BinaryIO) -> int:
    """Bytes left in a regular file (a known length avoids a stat after upload), else -1."""
    try:
        return os.fstat(f.fileno()).st_size - f.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return -1


def _now() -> float:
    import time

    return time.time()


def _http_time(value: str | None) -> float:
    if not value:
        return 0.0
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 0.0
