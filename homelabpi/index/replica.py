"""Read replicas of published shards for the answer function (any number of replicas).

Each answer container keeps a small cache: one listing of `index/<guild>/` per question, and a
download only for shards whose eTag changed since this container last fetched them. Older months
and full parts never change, so after the first question a replica usually downloads nothing or
just the part the index is writing to. A guild's question lists and opens only that guild's
prefix: isolation by construction.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from homelabpi.errors import NotFound
from homelabpi.index.publish import published
from homelabpi.index.shards import SUFFIX, sort_names
from homelabpi.keys import shard_key, validate_id
from homelabpi.store import ObjectStore

log = logging.getLogger(__name__)
STATE = ".etags.json"


class ShardCache:
    """Local copies of one store's published shards, refreshed by eTag."""

    def __init__(self, store: ObjectStore, cache_dir: Path | str) -> None:
        self.store = store
        self.dir = Path(cache_dir)
        self._lock = threading.Lock()
        self.downloads = 0  # for logs and benchmarks

    def _guild_dir(self, guild: str) -> Path:
        return self.dir / guild

    def _load_state(self, gdir: Path) -> dict[str, str]:
        try:
            state = json.loads((gdir / STATE).read_text())
            return {str(k): str(v) for k, v in state.items()} if isinstance(state, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save_state(self, gdir: Path, state: dict[str, str]) -> None:
        tmp = gdir / (STATE + ".tmp")
        tmp.write_text(json.dumps(state, sort_keys=True))
        os.replace(tmp, gdir / STATE)

    def paths_for(self, guild: str) -> list[Path]:
        """Up-to-date local shard files for `guild`, oldest first.

        Lists `index/<guild>/` only; downloads a shard only when its eTag differs from the one
        this cache last fetched (or the file is gone); drops shards no longer published.
        """
        guild = validate_id(guild, "guild")
        gdir = self._guild_dir(guild)
        with self._lock:
            gdir.mkdir(parents=True, exist_ok=True)
            state = self._load_state(gdir)
            listed = published(self.store, guild)
            for name in sort_names(listed):
                path = gdir / f"{name}{SUFFIX}"
                if state.get(name) == listed[name] and path.is_file():
                    continue
                try:
                    info = self.store.get_file(shard_key(guild, name), path)
                except NotFound:
                    # Deleted between list and get: forget it rather than fail the question.
                    listed.pop(name)
                    continue
                state[name] = info.etag
                self.downloads += 1
                log.info("fetched shard %s (etag %s, %d bytes)", info.key, info.etag, info.size)
            for name in sorted(set(state) - set(listed)):
                (gdir / f"{name}{SUFFIX}").unlink(missing_ok=True)
                state.pop(name)
                log.info("dropped shard %s: no longer published", shard_key(guild, name))
            self._save_state(gdir, state)
            return [gdir / f"{n}{SUFFIX}" for n in sort_names(listed)]
