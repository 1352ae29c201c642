"""MinioStore against a real HTTP S3 endpoint (moto server): same behaviour as LocalStore."""

from __future__ import annotations

import io
import os
from datetime import timedelta

import pytest
import requests

from homelabpi.errors import BadInput, NotFound, Unavailable
from homelabpi.settings import Settings
from homelabpi.store import open_store
from homelabpi.store.local import LocalStore
from homelabpi.store.minio import MinioStore, split_endpoint


def test_put_get_stat_roundtrip_with_metadata(minio_store):
    meta = {"Speaker": "Zoë 🎙", "channel": "general%20chat", "X-Amz-Meta-Guild": "g1"}
    info = minio_store.put("audio/g1/s1/c1.ogg", b"OggS-bytes", content_type="audio/ogg",
                           metadata=meta)
    assert info.etag and '"' not in info.etag
    assert info.size == len(b"OggS-bytes")
    assert minio_store.get("audio/g1/s1/c1.ogg") == b"OggS-bytes"
    st = minio_store.stat("audio/g1/s1/c1.ogg")
    assert st.etag == info.etag
    assert st.size == 10
    assert st.content_type == "audio/ogg"
    # Lowercase keys, exact values (unicode and literal '%' survive), as LocalStore gives them.
    assert st.metadata == {"speaker": "Zoë 🎙", "channel": "general%20chat", "guild": "g1"}
    assert info.metadata == st.metadata


def test_metadata_matches_local_store(minio_store, tmp_path):
    local = LocalStore(tmp_path / "store")
    meta = {"Speaker": "Ana", "started": "2026-11-24T12:00:00Z"}
    a = local.put("transcripts/g/s/c.json", b"{}", content_type="application/json", metadata=meta)
    b = minio_store.put("transcripts/g/s/c.json", b"{}", content_type="application/json",
                        metadata=meta)
    assert a.etag == b.etag  # single-part upload: both are the MD5 of the bytes
    assert local.stat(a.key).metadata == minio_store.stat(b.key).metadata


def test_stream_put_of_unknown_length(minio_store):
    payload = bytes(range(256)) * 4096  # 1 MiB
    info = minio_store.put("models/m/weights.bin", io.BytesIO(payload))
    assert info.size == len(payload)
    assert minio_store.get("models/m/weights.bin") == payload


def test_missing_key_is_not_found(minio_store, tmp_path):
    with pytest.raises(NotFound):
        minio_store.get("audio/g/s/none.ogg")
    with pytest.raises(NotFound):
        minio_store.stat("audio/g/s/none.ogg")
    with pytest.raises(NotFound):
        minio_store.get_file("audio/g/s/none.ogg", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert not list(tmp_path.iterdir())  # no temp file left behind


def test_get_file_is_atomic_and_reports_etag(minio_store, tmp_path):
    info = minio_store.put("index/g/2026-11.sqlite3", b"A" * 3000)
    dest = tmp_path / "sub" / "shard.sqlite3"
    got = minio_store.get_file("index/g/2026-11.sqlite3", dest)
    assert dest.read_bytes() == b"A" * 3000
    assert got.etag == info.etag and got.size == 3000
    assert sorted(p.name for p in dest.parent.iterdir()) == ["shard.sqlite3"]


def test_list_in_key_order_under_prefix(minio_store):
    for key in ["index/g2/2026-01.sqlite3", "index/g/2026-02.sqlite3", "index/g/2026-01.sqlite3",
                "audio/g/s/c.ogg"]:
        minio_store.put(key, key.encode())
    keys = [o.key for o in minio_store.list("index/g/")]
    assert keys == ["index/g/2026-01.sqlite3", "index/g/2026-02.sqlite3"]
    assert [o.key for o in minio_store.list()][0] == "audio/g/s/c.ogg"
    one = next(iter(minio_store.list("index/g/2026-01")))
    assert one.etag == minio_store.stat(one.key).etag


def test_delete_is_idempotent(minio_store):
    minio_store.put("queries/g/2026-11/q.json", b"{}")
    minio_store.delete("queries/g/2026-11/q.json")
    minio_store.delete("queries/g/2026-11/q.json")
    with pytest.raises(NotFound):
        minio_store.stat("queries/g/2026-11/q.json")


def test_unsafe_keys_rejected_before_io(minio_store, s3):
    for key in ["../etc/passwd", "/abs", "audio//x", "audio/\x00"]:
        with pytest.raises(BadInput):
            minio_store.put(key, b"x")
    assert s3.requests == []


def test_presigned_url_works_without_credentials(minio_store):
    minio_store.put("audio/g/s/clip.ogg", b"clip-bytes", content_type="audio/ogg")
    url = minio_store.presign("audio/g/s/clip.ogg", timedelta(minutes=5))
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200 and resp.content == b"clip-bytes"
    tampered = url.replace("clip.ogg", "other.ogg")
    assert requests.get(tampered, timeout=10).status_code in (403, 404)


def test_put_emits_no_event(minio_store, s3):
    """MinIO sends the notification; the client must not add a second delivery path."""
    minio_store.put("audio/g/s/c.ogg", b"x")
    assert [r.method for r in s3.requests] == ["PUT"]
    assert not hasattr(minio_store, "outbox")


def test_unreachable_endpoint_is_unavailable():
    store = MinioStore("127.0.0.1:9", "a", "b", bucket="unreachable")
    store.client._http.connection_pool_kw["retries"] = 0  # fail fast
    with pytest.raises(Unavailable):
        store.stat("audio/g/s/c.ogg")


def test_open_store_picks_minio_from_settings_and_secrets(s3, tmp_path, monkeypatch):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "homelabpi-s3-access-key").write_text(s3.access_key + "\n")
    (secrets / "homelabpi-s3-secret-key").write_text(s3.secret_key + "\n")
    monkeypatch.setenv("HOMELABPI_SECRETS_DIR", str(secrets))
    settings = Settings.from_env({"HOMELABPI_S3_ENDPOINT": s3.endpoint,
                                  "HOMELABPI_S3_BUCKET": "open-store-test",
                                  "HOMELABPI_DATA_DIR": str(tmp_path)})
    store = open_store(settings)
    assert isinstance(store, MinioStore) and store.bucket == "open-store-test"
    store.ensure_bucket()
    store.put("audio/g/s/c.ogg", b"x")
    assert [o.key for o in store.list()] == ["audio/g/s/c.ogg"]
    assert "secret" not in repr(settings).lower() or s3.secret_key not in repr(settings)
    local = open_store(Settings.from_env({"HOMELABPI_DATA_DIR": str(tmp_path)}))
    assert isinstance(local, LocalStore)


def test_missing_credentials_say_what_to_set(monkeypatch, tmp_path):
    monkeypatch.setenv("HOMELABPI_SECRETS_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="homelabpi-s3-access-key"):
        open_store(Settings.from_env({"HOMELABPI_S3_ENDPOINT": "minio:9000"}))


@pytest.mark.parametrize("raw,expected", [
    ("minio:9000", ("minio:9000", False)),
    ("http://minio:9000/", ("minio:9000", False)),
    ("https://s3.lan", ("s3.lan", True)),
])
def test_split_endpoint(raw, expected):
    assert split_endpoint(raw) == expected


def test_secure_setting_parses_booleans():
    assert Settings.from_env({"HOMELABPI_S3_SECURE": "false"}).s3_secure is False
    assert Settings.from_env({"HOMELABPI_S3_SECURE": "1"}).s3_secure is True
    with pytest.raises(ValueError, match="HOMELABPI_S3_SECURE"):
        Settings.from_env({"HOMELABPI_S3_SECURE": "maybe"})


def test_spool_confirms_a_clip_uploaded_in_parts(s3, minio_store, tmp_path):
    """A WAV bigger than the store's part size goes up as a multipart upload, whose eTag is not
    the file's md5; the bot's uploader must still confirm it (and not retry it forever)."""
    from bot.spool import Spool, Uploader

    store = MinioStore(s3.endpoint, s3.access_key, s3.secret_key, bucket=minio_store.bucket,
                       part_size=5 * 2**20)  # S3's smallest part
    spool = Spool(tmp_path / "spool")
    path = spool.begin("c-big", "wav", "audio/g1/s1/c-big.wav", {"speaker": "Ana"}, "audio/wav")
    path.write_bytes(os.urandom(11 * 2**20))
    entry = spool.commit(path)
    expected = store.upload_etag(entry.path)
    assert expected.endswith("-3") and expected != entry.md5

    up = Uploader(spool, store)
    assert up.run_once() is True
    assert up.stats.uploaded == 1 and up.stats.mismatches == 0 and len(spool) == 0
    assert store.stat("audio/g1/s1/c-big.wav").etag == expected
    small = tmp_path / "small.ogg"
    small.write_bytes(b"OggS" * 1000)
    with small.open("rb") as f:
        assert store.upload_etag(small) == store.put("audio/g1/s1/small.ogg", f).etag
