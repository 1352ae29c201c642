"""How the CLI and the bot reach the functions: over the gateway, or in-process without one.

With `HOMELABPI_GATEWAY` set, calls are HTTP requests to `<gateway>/function/<name>` carrying the
bearer token; unset, the same `invoke` runs here. Either way a non-2xx answer raises the error
class for its status with the function's own message.
"""

from __future__ import annotations

import json
import logging

import requests

from homelabpi.auth import auth_header
from homelabpi.errors import BadInput, HomeLabPiError, NotFound, Unauthorized, Unavailable
from homelabpi.functions import invoke
from homelabpi.runtime import Runtime
from homelabpi.settings import Settings

log = logging.getLogger(__name__)
_BY_STATUS = {400: BadInput, 401: Unauthorized, 404: NotFound, 413: BadInput}


class Client:
    def __init__(self, settings: Settings, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self._runtime = runtime

    @property
    def runtime(self) -> Runtime:
        """The in-process runtime (also used to reach the local store when ingesting)."""
        if self._runtime is None:
            self._runtime = Runtime(self.settings)
        return self._runtime

    # -- transport ----------------------------------------------------------------------------
    def call(self, name: str, body: bytes, *, asynchronous: bool = False) -> dict:
        headers = {"Content-Type": "application/json", **auth_header()}
        if self.settings.gateway:
            path = "async-function" if asynchronous else "function"
            url = f"{self.settings.gateway}/{path}/{name}"
            try:
                resp = requests.post(url, data=body, headers=headers, timeout=600)
            except requests.RequestException as exc:
                raise Unavailable(
                    f"cannot reach the gateway at {self.settings.gateway} ({exc}); start it "
                    "with 'homelabpi up' or unset HOMELABPI_GATEWAY") from exc
            if asynchronous and resp.status_code == 202:
                return {"call_id": resp.headers.get("X-Call-Id", "")}
            status = resp.status_code
            try:
                doc = resp.json()
            except ValueError:
                doc = {"error": resp.text[:500] or resp.reason}
        else:
            status, doc = invoke(name, body, headers, self.runtime)
        if status >= 300 and not doc.get("results"):
            raise _BY_STATUS.get(status, Unavailable if status >= 500 else BadInput)(
                doc.get("error") or f"{name} answered {status}")
        return doc

    def deliver_events(self) -> int:
        """Hand pending bucket events to their functions; returns how many were delivered.

        Without a gateway this runs transcribe and index here and now; with one it queues them
        as async calls, as MinIO's webhook does on the cluster.
        """
        store = self.runtime.store
        outbox = getattr(store, "outbox", None)
        if outbox is None:
            return 0

        def send(function: str, body: bytes) -> None:
            try:
                self.call(function, body, asynchronous=bool(self.settings.gateway))
            except Unavailable:
                raise
            except HomeLabPiError as exc:  # rejected for good: logged, never retried
                log.warning("%s rejected an event: %s", function, exc)

        return outbox.deliver(send, store)

    # -- reads ---------------------------------------------------------------------------------
    def _answer(self, **req: object) -> dict:
        return self.call("answer", json.dumps(req).encode())

    def ask(self, question: str, guild: str, asker: str = "", thread: str = "",
            now: str | None = None) -> dict:
        """Ask; `thread` links follow-ups, `now` (ISO 8601) anchors "yesterday" and friends.

        Without a gateway this process is also the event loop, so the question's log entry is
        delivered to `index` right away.
        """
        extra = {k: v for k, v in (("thread", thread), ("now", now)) if v}
        result = self._answer(op="ask", question=question, guild=guild, asker=asker, **extra)
        if not self.settings.gateway:
            self.deliver_events()
        return result

    def search(self, text: str, guild: str, limit: int = 10) -> list[dict]:
        return self._answer(op="search", text=text, guild=guild, limit=limit)["hits"]

    def sessions(self, guild: str) -> list[dict]:
        return self._answer(op="sessions", guild=guild)["sessions"]

    def transcript(self, session: str, guild: str | None = None) -> dict:
        return self._answer(op="transcript", session=session, **({"guild": guild} if guild else {}))

    def status(self, guild: str, keys: list[str]) -> dict[str, dict]:
        return self._answer(op="status", guild=guild, keys=keys)["clips"]

    def queries(self, guild: str, limit: int = 20) -> list[dict]:
        """The guild's query log, newest first (pending log entries are indexed first)."""
        if not self.settings.gateway:
            self.deliver_events()
        return self._answer(op="queries", guild=guild, limit=limit)["queries"]
