"""`homelabpi serve` / `up`: gateway, async worker and outbox dispatcher in one process."""

from __future__ import annotations

import logging
import threading

import requests
from waitress.server import create_server

from homelabpi.auth import auth_header
from homelabpi.gateway import CallQueue, Worker, create_app
from homelabpi.reconcile import Timer
from homelabpi.runtime import Runtime, install
from homelabpi.settings import Settings
from homelabpi.store.outbox import Outbox

log = logging.getLogger(__name__)


class Dispatcher(threading.Thread):
    """Delivers the local store's events to the gateway, as MinIO's webhook target does."""

    def __init__(self, outbox: Outbox, runtime: Runtime, base_url: str) -> None:
        super().__init__(name="homelabpi-outbox", daemon=True)
        self.outbox, self.runtime, self.base_url = outbox, runtime, base_url
        self.stopping = threading.Event()

    def send(self, function: str, body: bytes) -> None:
        resp = requests.post(f"{self.base_url}/async-function/{function}", data=body, timeout=30,
                             headers={"Content-Type": "application/json", **auth_header()})
        if resp.status_code != 202:
            raise RuntimeError(f"gateway answered {resp.status_code}")

    def run(self) -> None:
        while not self.stopping.wait(0.3):
            try:
                self.outbox.deliver(self.send, self.runtime.store)
            except Exception:  # noqa: BLE001 - keep dispatching; the record stays queued
                log.exception("outbox delivery failed; retrying")


class Server:
    """Everything `homelabpi serve` runs; `start()` for tests, `run()` for the CLI."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime = Runtime(settings)
        install(self.runtime)
        self.queue = CallQueue(settings.queue_path)
        self.worker = Worker(self.queue, self.runtime, settings.async_retries)
        host, _, port = settings.bind.rpartition(":")
        self.wsgi = create_server(create_app(self.runtime, self.queue), host=host or "127.0.0.1",
                                  port=int(port), threads=4)
        self.url = f"http://{host or '127.0.0.1'}:{self.wsgi.effective_port}"
        outbox = getattr(self.runtime.store, "outbox", None)
        self.dispatcher = (Dispatcher(outbox, self.runtime, self.url) if outbox is not None
                           else None)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # The worker retries, but an event can still be lost (e.g. the process killed between a
        # store write and its outbox record): the reconciler catches what events missed.
        self.reconciler = (Timer(self.runtime, settings.reconcile_seconds,
                                 settings.reconcile_limit)
                           if settings.reconcile_seconds > 0 else None)

    def start(self) -> Server:
        from homelabpi.functions import FUNCTIONS, warm_up

        for name in FUNCTIONS:  # load models now, in the main thread, not on the first event
            warm_up(name)
        self.worker.start()
        if self.dispatcher:
            self.dispatcher.start()
        if self.reconciler:
            self.reconciler.start()
        self._thread = threading.Thread(target=self._serve, name="homelabpi-http", daemon=True)
        self._thread.start()
        log.info("gateway listening on %s (data in %s)", self.url, self.settings.data_dir)
        return self

    def _serve(self) -> None:
        try:
            self.wsgi.run()
        except (OSError, ValueError):
            if not self._stopping.is_set():  # closing the sockets under select() is expected
                raise

    def run(self) -> None:
        self.start()
        try:
            while self._thread and self._thread.is_alive():
                self._thread.join(1.0)
        except KeyboardInterrupt:
            log.info("stopping")
        finally:
            self.stop()

    def stop(self) -> None:
        self._stopping.set()
        self.worker.stopping.set()
        if self.dispatcher:
            self.dispatcher.stopping.set()
        if self.reconciler:
            self.reconciler.stopping.set()
        while self.wsgi._map:  # waitress has no public stop(): close its channels, then tasks
            for channel in list(self.wsgi._map.values()):
                channel.handle_close()
        self.wsgi.task_dispatcher.shutdown()
        if self._thread:
            self._thread.join(5)
        self.worker.join(5)
        self.queue.close()
        install(None)
