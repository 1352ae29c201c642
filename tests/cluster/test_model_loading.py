"""While a container loads its models it answers 503 with Retry-After, never a 500 or a hang.

Served by the python3-flask template entry point in its own process (tests/template/runner.py);
the model load is made slow at the narrowest point, `homelabpi.functions.warm_up`, through a
sitecustomize on the function's PYTHONPATH.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "template"))
from runner import FunctionProcess, free_port  # noqa: E402

from homelabpi.events import make_event  # noqa: E402

SLOW_WARM_UP = """
import time
import homelabpi.functions as f
_real = f.warm_up
def _slow(name):
    time.sleep(6)
    _real(name)
f.warm_up = _slow
"""


def test_calls_during_model_loading_get_503_with_retry_after(tmp_path, s3_server):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_WARM_UP)
    proc = FunctionProcess(
        "index", tmp_path, port=free_port(),
        env={"HOMELABPI_S3_ENDPOINT": s3_server.endpoint, "HOMELABPI_S3_BUCKET": "loading",
             "HOMELABPI_DATA_DIR": str(tmp_path / "data"), "HOMELABPI_EMBEDDINGS": "false",
             "PYTHONPATH": f"{tmp_path / 'build' / 'index' / 'function'}:{hook}"},
        secrets={"homelabpi-token": "t0k", "homelabpi-s3-access-key": s3_server.access_key,
                 "homelabpi-s3-secret-key": s3_server.secret_key})
    body = make_event(bucket="loading", key="transcripts/g1/s1/c1.json", etag="0" * 32, size=1)
    headers = {"Authorization": "Bearer t0k", "Content-Type": "application/json"}
    # Start without waiting for readiness: poll the port ourselves.
    import threading

    started = threading.Thread(target=proc.start, kwargs={"timeout": 60})
    started.start()
    try:
        seen_503 = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                r = requests.post(proc.url, data=body, headers=headers, timeout=5)
            except requests.ConnectionError:
                time.sleep(0.1)
                continue
            if r.status_code == 503:
                seen_503 = r
                break
        assert seen_503 is not None, proc.log()[-2000:]
        assert seen_503.headers["Retry-After"] == "10"
        assert "loading its models" in seen_503.json()["error"]
        started.join(60)
        # Loaded: the same call is now handled (the object is gone, so "gone", status 200).
        r = requests.post(proc.url, data=body, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["outcome"] == "gone"
    finally:
        started.join(60)
        proc.stop()
