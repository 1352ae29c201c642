"""The template runner behaves like python3-flask's index.py, and builds contexts like faas-cli."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest
import requests
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from runner import FunctionProcess, build_context  # noqa: E402

HANDLER = textwrap.dedent('''
    import json
    import os

    from flask import request

    import shared.lib


    def handle(req):
        if request.path == "/tuple":
            return "created", 201, {"X-From": "handler"}
        return json.dumps({"type": type(req).__name__, "len": len(req), "path": request.path,
                           "method": request.method, "lib": shared.lib.VALUE,
                           "lib_file": shared.lib.__file__, "cwd": os.getcwd()})
''')


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("proj")
    (root / "fn").mkdir()
    (root / "fn" / "handler.py").write_text(HANDLER)
    (root / "fn" / "requirements.txt").write_text("")
    (root / "fn" / "build").mkdir()  # faas-cli skips these two names
    (root / "shared").mkdir()
    (root / "shared" / "__init__.py").write_text("")
    (root / "shared" / "lib.py").write_text("VALUE = 42\n")
    stack = {"version": "1.0", "provider": {"name": "openfaas", "gateway": "http://x"},
             "configuration": {"copy": ["./shared"]},
             "functions": {
                 "text": {"lang": "python3-flask", "handler": "./fn",
                          "environment": {"PYTHONPATH": "/home/app/function"}},
                 "raw": {"lang": "python3-flask", "handler": "./fn",
                         "environment": {"PYTHONPATH": "/home/app/function",
                                         "RAW_BODY": "True"}}}}
    (root / "stack.yml").write_text(yaml.safe_dump(stack))
    return root


def test_build_context_layout(project, tmp_path):
    ctx = build_context("text", tmp_path, project / "stack.yml")
    assert (ctx / "index.py").is_file()
    assert (ctx / "function" / "handler.py").is_file()
    assert (ctx / "function" / "__init__.py").is_file()
    assert (ctx / "function" / "shared" / "lib.py").is_file()
    assert not (ctx / "function" / "build").exists()


@pytest.fixture(scope="module")
def servers(project, tmp_path_factory):
    work = tmp_path_factory.mktemp("run")
    procs = {name: FunctionProcess(name, work, stack_path=project / "stack.yml").start()
             for name in ("text", "raw")}
    yield procs
    for p in procs.values():
        p.stop()


def test_routes_methods_and_body_modes(servers):
    text, raw = servers["text"].url, servers["raw"].url
    r = requests.post(text + "/any/sub/path", data="héllo".encode()).json()
    assert r == {**r, "type": "str", "len": 5, "path": "/any/sub/path", "method": "POST",
                 "lib": 42}
    assert "/function/shared/lib.py" in r["lib_file"]  # the copied library, not the repo's
    assert requests.post(raw, data="héllo".encode()).json()["type"] == "bytes"
    assert requests.post(raw, data="héllo".encode()).json()["len"] == 6
    assert requests.get(text).json()["method"] == "GET"
    assert requests.head(text).status_code == 200  # Flask adds HEAD to GET routes
    for method in ("PUT", "DELETE", "PATCH"):
        assert requests.request(method, text).status_code == 405


def test_chunked_body_and_tuple_return(servers):
    def gen():
        yield b"abc"
        yield b"defg"

    assert requests.post(servers["raw"].url, data=gen()).json()["len"] == 7
    r = requests.post(servers["text"].url + "/tuple")
    assert r.status_code == 201 and r.text == "created" and r.headers["X-From"] == "handler"
