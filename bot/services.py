"""What the bot's cogs share: library client, store, upload spool, consent state, recordings.

One `Services` per bot process. Reads (ask, search, sessions, transcripts) go through
`homelabpi.client.Client`, over the gateway when one is configured; clips go to the object store
through the durable spool and its uploader thread. Without a gateway and with the local store
nothing else would deliver the store's bucket events, so an event pump thread runs
transcribe and index in this process (the embedded default of `python -m bot`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.consent import BotState
from bot.spool import Spool, Uploader
from homelabpi.client import Client
from homelabpi.runtime import Runtime
from homelabpi.settings import Settings
from homelabpi.store import ObjectStore, open_store

if TYPE_CHECKING:
    from bot.session import RecordingSession

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Long-lived parts of the bot (built once, started once, stopped once)."""

    settings: Settings
    client: Client
    store: ObjectStore
    spool: Spool
    uploader: Uploader
    state: BotState
    sessions: dict[int, RecordingSession] = field(default_factory=dict)  # guild id → recording
    pump_events: bool = False
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _pump: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        """Salvage clips a crash left behind, then start uploading (and pumping events)."""
        n = self.spool.recover()
        if n:
            log.info("recovered %d interrupted clip(s) from the spool", n)
        self.uploader.start()
        if self.pump_events:
            self._pump = threading.Thread(target=self._pump_loop, name="homelabpi-events",
                                          daemon=True)
            self._pump.start()

    def stop(self) -> None:
        self._stop.set()
        self.uploader.stop()
        if self._pump is not None:
            self._pump.join(10)
        self.state.close()

    def _pump_loop(self, interval: float = 1.0) -> None:
        while not self._stop.wait(interval):
            try:
                self.client.deliver_events()
            except Exception:  # noqa: BLE001 - the records stay in the outbox for a retry
                log.exception("delivering bucket events failed; retrying")


def build_services(settings: Settings, gateway_url: str | None = None) -> Services:
    """Services for `settings`; `gateway_url` (from `homelabpi up`) overrides HOMELABPI_GATEWAY."""
    if gateway_url:
        settings = dataclasses.replace(settings, gateway=gateway_url.rstrip("/"))
    store = open_store(settings)
    client = Client(settings, None if settings.gateway else Runtime(settings, store))
    spool = Spool(settings.data_dir / "bot" / "spool")
    return Services(settings=settings, client=client, store=store, spool=spool,
                    uploader=Uploader(spool, store), state=BotState.in_data_dir(settings.data_dir),
                    pump_events=not settings.gateway and getattr(store, "outbox", None) is not None)
