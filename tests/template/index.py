"""The python3-flask template's entry point, re-created for tests (our own code, same behaviour).

What the template's `index.py` does, and this file does the same:
- a Flask app with one view on `/` and `/<path:path>` for GET and POST only (Flask adds HEAD and
  OPTIONS for those routes itself; PUT, DELETE and PATCH get Flask's 405);
- `Transfer-Encoding: chunked` requests get `wsgi.input_terminated` so the body can be read;
- the body goes to `handler.handle(...)` as text, or as bytes when the `RAW_BODY` env var is
  "true" (case-insensitive) or "1";
- whatever `handle` returns is returned by the view (so `(body, status, headers)` works);
- `from function import handler`, served by waitress.
The one difference: the template always listens on 0.0.0.0:5000 behind of-watchdog; tests run
several functions side by side, so this listens on 127.0.0.1:$PORT (default 5000).
"""

import os
import sys

from flask import Flask, request
from function import handler
from waitress import serve

app = Flask(__name__)


def is_true(val):
    return (len(val) > 0 and val.lower() == "true") or val == "1"


@app.before_request
def fix_transfer_encoding():
    if request.headers.get("Transfer-Encoding", None) == "chunked":
        request.environ["wsgi.input_terminated"] = True


@app.route("/", defaults={"path": ""}, methods=["POST", "GET"])
@app.route("/<path:path>", methods=["POST", "GET"])
def main_route(path):
    as_text = not is_true(os.getenv("RAW_BODY", "false"))
    return handler.handle(request.get_data(as_text=as_text))


if __name__ == "__main__":
    # Not in the template: tells the test which copy of the shared library was imported.
    lib = sys.modules.get("homelabpi")
    print(f"template-runner: homelabpi from {getattr(lib, '__file__', None)}", flush=True)
    serve(app, host="127.0.0.1", port=int(os.environ.get("PORT", "5000")), threads=4)
