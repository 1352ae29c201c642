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
from homelabpi.index.shards import SUFFIX, name_of_file, sort_names
from homelabpi.keys import validate_id
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
        prefix = f"index/{guild}/"
        gdir = self._guild_dir(guild)
        with self._lock:
            gdir.mkdir(parents=True, exist_ok=True)
            state = self._load_state(gdir)
            listed: dict[str, str] = {}
            for obj in self.store.list(prefix):
                rest = obj.key[len(prefix):]
                name = None if "/" in rest else name_of_file(rest)
                if name is None:
                    continue  # not a shard (e.g. a stray object): never opened
                listed[name] = obj.etag
            for name in sort_names(listed):
                path = gdir / f"{name}{SUFFIX}"
                if state.get(name) == listed[name] and path.is_file():
                    continue
                try:
                    info = self.store.get_file(f"{prefix}{name}{SUFFIX}", path)
                except NotFound:
                    # Deleted between list and get: forget it rather than fail the question.
                    listed.pop(name)
                    continue
                state[name] = info.etag
                self.downloads += 1
                log.info("fetched shard %s%s%s (etag %s, %d bytes)", prefix, name, SUFFIX,
                         info.etag, info.size)
            for name in sorted(set(state) - set(listed)):
                (gdir / f"{name}{SUFFIX}").unlink(missing_ok=True)
                state.pop(name)
                log.info("dropped shard %s%s%s: no longer published", prefix, name, SUFFIX)
            self._save_state(gdir, state)
            return [gdir / f"{n}{SUFFIX}" for n in sort_names(listed)]
