"""What a function process keeps between calls: settings, the store, the shards, the engine.

OpenFaaS reuses a container for many calls, so models and connections load once per process.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path

from homelabpi.asr import Engine, load_engine
from homelabpi.index.shards import Shards
from homelabpi.settings import Settings
from homelabpi.store import ObjectStore, open_store


class Runtime:
    def __init__(self, settings: Settings, store: ObjectStore | None = None) -> None:
        self.settings = settings
        self.store = store if store is not None else open_store(settings)
        self.shards = Shards(settings.index_dir)

    @cached_property
    def engine(self) -> Engine:
        return load_engine(self.settings)

    def shard_paths(self, guild: str) -> list[Path]:
        """The shard files a question for `guild` may open, and no others."""
        return self.shards.paths(guild)

    def guilds(self) -> list[str]:
        return self.shards.guilds()

    def close(self) -> None:
        self.shards.close()


_current: Runtime | None = None
_lock = threading.Lock()


def current() -> Runtime:
    """The process-wide runtime, built from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = Runtime(Settings.from_env())
        return _current


def install(runtime: Runtime | None) -> None:
    """Replace the process-wide runtime (the gateway and tests build their own)."""
    global _current
    with _lock:
        if _current is not None and _current is not runtime:
            _current.close()
        _current = runtime
