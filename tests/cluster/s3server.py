"""A real HTTP S3 endpoint for tests: moto's server app on a loopback port, with a request log.

The log (method, path, query) is how tests prove what a component did over the wire, e.g. that an
answer replica downloaded one shard and never touched another guild's prefix.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from urllib.parse import unquote

from werkzeug.serving import make_server


@dataclass
class Request:
    method: str
    path: str
    query: str


@dataclass
class S3Server:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    access_key: str = "testing-access"
    secret_key: str = "testing-secret"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> S3Server:
        from moto.server import DomainDispatcherApplication, create_backend_app

        app = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()

        def logged(environ, start_response):
            with lock:
                self.requests.append(Request(environ["REQUEST_METHOD"],
                                             unquote(environ.get("PATH_INFO", "")),
                                             environ.get("QUERY_STRING", "")))
            return app(environ, start_response)

        self._server = make_server(self.host, self.port, logged, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)

    def clear(self) -> None:
        self.requests.clear()

    def object_gets(self, bucket: str) -> list[str]:
        """Keys fetched with GET (downloads), in order."""
        prefix = f"/{bucket}/"
        return [r.path[len(prefix):] for r in self.requests
                if r.method == "GET" and r.path.startswith(prefix) and len(r.path) > len(prefix)]

    def object_puts(self, bucket: str) -> list[str]:
        """Keys uploaded with PUT (single-part uploads), in order."""
        prefix = f"/{bucket}/"
        return [r.path[len(prefix):] for r in self.requests
                if r.method == "PUT" and r.path.startswith(prefix) and len(r.path) > len(prefix)]

    def list_prefixes(self, bucket: str) -> list[str]:
        """The `prefix=` of every ListObjects call on the bucket."""
        from urllib.parse import parse_qs

        out = []
        for r in self.requests:
            if r.method == "GET" and r.path.rstrip("/") == f"/{bucket}":
                q = parse_qs(r.query, keep_blank_values=True)
                if "list-type" in q or "prefix" in q:
                    out.append(q.get("prefix", [""])[0])
        return out
