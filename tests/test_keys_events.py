"""Object keys and MinIO event records: what a hostile key or malformed event looks like."""

from __future__ import annotations

import json

import pytest

from homelabpi.errors import BadInput
from homelabpi.events import CREATED, make_event, parse_events, target_for
from homelabpi.keys import ClipKey, validate_id, validate_key


@pytest.mark.parametrize("key", [
    "", "/etc/passwd", "audio/../../etc/passwd", "audio/./x", "audio//x", "audio/a\x00b",
    "audio/a\nb", "C:/Windows", "audio\\..\\x", "a" * 1100,
])
def test_hostile_keys_are_refused(key):
    with pytest.raises(BadInput):
        validate_key(key)


def test_clip_key_round_trip():
    ck = ClipKey.parse("audio/123/s-1/c-9.ogg")
    assert ck == ClipKey("123", "s-1", "c-9")
    assert ck.transcript == "transcripts/123/s-1/c-9.json"
    assert ck.audio("OGG") == "audio/123/s-1/c-9.ogg"
    with pytest.raises(BadInput):
        ClipKey.parse("audio/123/c-9.ogg")
    with pytest.raises(BadInput):
        ClipKey.parse("audio/12 3/s/c.ogg")


def test_ids_are_strict():
    assert validate_id("guild_1.a-b", "guild") == "guild_1.a-b"
    for bad in ("", "-x", "a/b", "a b", "ä", "x" * 200):
        with pytest.raises(BadInput):
            validate_id(bad, "guild")


def test_event_round_trip_url_encodes_keys():
    body = make_event(bucket="b", key="audio/1/s 1/c+1.ogg", etag="abc", size=3)
    record = json.loads(body)["Records"][0]
    assert record["s3"]["object"]["key"] == "audio/1/s%201/c%2B1.ogg"
    assert record["eventName"] == CREATED
    (ev,) = parse_events(body)
    assert (ev.key, ev.etag, ev.size, ev.created) == ("audio/1/s 1/c+1.ogg", "abc", 3, True)


def test_minio_quoted_etag_and_plus_for_space():
    body = {"Records": [{"eventName": CREATED, "s3": {"bucket": {"name": "b"}, "object": {
        "key": "audio/1/s+1/c.ogg", "eTag": '"abc"', "size": 1}}}]}
    (ev,) = parse_events(json.dumps(body))
    assert ev.key == "audio/1/s 1/c.ogg" and ev.etag == "abc"


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'{"Records": []}', b'{"Records": [{"s3": {}}]}',
    b'{"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": "..%2Fetc"}}}]}',
])
def test_malformed_events_are_bad_input(body):
    with pytest.raises(BadInput):
        parse_events(body)


def test_routes():
    assert target_for("audio/1/s/c.ogg") == "transcribe"
    assert target_for("transcripts/1/s/c.json") == "index"
    assert target_for("queries/1/2026-11/q.json") == "index"
    assert target_for("index/1/2026-11.sqlite3") is None
    assert target_for("transcripts/1/s/c.json", "s3:ObjectRemoved:Delete") == "index"
    assert target_for("audio/1/s/c.ogg", "s3:ObjectRemoved:Delete") is None
