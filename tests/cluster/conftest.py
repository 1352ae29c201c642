"""Fixtures for the cluster tests: one moto S3 server per session, a fresh bucket per test."""

from __future__ import annotations

import itertools
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from s3server import S3Server  # noqa: E402

pytest.importorskip("minio")
pytest.importorskip("moto")

_ids = itertools.count()


@pytest.fixture(scope="session")
def s3_server():
    # botocore/moto read these; keep any real credentials of the machine out of the tests.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing-access")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing-secret")
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture()
def s3(s3_server):
    s3_server.clear()
    return s3_server


@pytest.fixture()
def minio_store(s3):
    from homelabpi.store.minio import MinioStore

    store = MinioStore(s3.endpoint, s3.access_key, s3.secret_key,
                       bucket=f"homelabpi-test-{os.getpid()}-{next(_ids)}")
    store.ensure_bucket()
    s3.clear()
    return store
