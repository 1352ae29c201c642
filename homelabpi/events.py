"""MinIO bucket-notification records: built by the local store, parsed by every function.

The record shape is MinIO's (`Records[].s3.bucket.name`, URL-encoded `s3.object.key`, `eTag`,
`eventName` `s3:ObjectCreated:Put`), so the same handler code runs behind MinIO webhooks on the
cluster and behind the local store's outbox on one machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote_plus

from homelabpi.errors import BadInput
from homelabpi.keys import validate_key

CREATED = "s3:ObjectCreated:Put"
REMOVED = "s3:ObjectRemoved:Delete"


@dataclass(frozen=True)
class ObjectEvent:
    """One record, reduced to what a consumer needs."""

    name: str
    bucket: str
    key: str
    etag: str
    size: int
    time: str

    @property
    def created(self) -> bool:
        return self.name.startswith("s3:ObjectCreated:")


def make_record(
    bucket: str, key: str, etag: str, size: int, name: str = CREATED,
    metadata: dict[str, str] | None = None, when: datetime | None = None,
) -> dict:
    """A record as MinIO writes it (the fields we and MinIO consumers read)."""
    when = when or datetime.now(UTC)
    return {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "eventName": name,
        "userIdentity": {"principalId": "homelabpi"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "homelabpi"},
                       "arn": f"arn:aws:s3:::{bucket}"},
            "object": {
                "key": quote(key, safe="/"),
                "size": size,
                "eTag": etag,
                "contentType": (metadata or {}).get("content-type", "application/octet-stream"),
                "userMetadata": {f"X-Amz-Meta-{k.title()}": v for k, v in (metadata or {}).items()
                                 if k != "content-type"},
                "sequencer": f"{int(when.timestamp() * 1e9):X}",
            },
        },
        "source": {"host": "127.0.0.1", "port": "", "userAgent": "homelabpi"},
    }


def make_event(**kwargs) -> bytes:
    """A whole notification body with one record."""
    rec = make_record(**kwargs)
    return json.dumps({"EventName": rec["eventName"], "Key": f"{rec['s3']['bucket']['name']}/"
                       f"{rec['s3']['object']['key']}", "Records": [rec]}).encode()


def parse_events(body: bytes | str) -> list[ObjectEvent]:
    """Every record in a notification body; BadInput naming what is wrong otherwise."""
    try:
        doc = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"event body is not JSON ({exc}); expected a MinIO bucket notification "
                       "with a 'Records' list") from exc
    records = doc.get("Records") if isinstance(doc, dict) else None
    if not isinstance(records, list) or not records:
        raise BadInput("event body has no 'Records' list; expected a MinIO bucket notification")
    events = []
    for i, rec in enumerate(records):
        try:
            s3 = rec["s3"]
            obj = s3["object"]
            key = unquote_plus(str(obj["key"]))
            events.append(ObjectEvent(
                name=str(rec.get("eventName", "")),
                bucket=str(s3["bucket"]["name"]),
                key=validate_key(key),
                etag=str(obj.get("eTag") or obj.get("etag") or "").strip('"'),
                size=int(obj.get("size") or 0),
                time=str(rec.get("eventTime", "")),
            ))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadInput(f"event record {i} is malformed: missing or invalid {exc}; expected "
                           "s3.bucket.name and s3.object.key") from exc
    return events


# Which function consumes which event: the same rules faasd/ configures in MinIO.
ROUTES: dict[str, dict[str, str]] = {
    "created": {"audio/": "transcribe", "transcripts/": "index", "queries/": "index"},
    "removed": {"transcripts/": "index"},
}


def target_for(key: str, name: str = CREATED) -> str | None:
    """The function an event for `key` goes to, or None if nothing consumes it."""
    table = ROUTES["created" if name.startswith("s3:ObjectCreated:") else "removed"]
    return next((fn for prefix, fn in table.items() if key.startswith(prefix)), None)
