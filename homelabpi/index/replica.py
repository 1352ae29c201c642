"""Read replicas of published shards for the answer function (any number of replicas).

Each answer container keeps a small cache: one listing of `index/<guild>/` per question, and a
download only for shards whose eTag changed since this container last fetched them. Older months
are immutable, so after the first question a replica usually downloads nothing or just the current
month. A guild's question lists and opens only that guild's prefix: isolation by construction.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from homelabpi.errors import NotFound
from homelabpi.index.publish import MONTH
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
        """Up-to-date local shard files for `guild`, oldest month first.

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
                name = obj.key[len(prefix):]
                month = name[:-len(".sqlite3")] if name.endswith(".sqlite3") else ""
                if "/" in name or not MONTH.match(month):
                    continue  # not a shard (e.g. a stray object): never opened
                listed[month] = obj.etag
            for month, etag in sorted(listed.items()):
                path = gdir / f"{month}.sqlite3"
                if state.get(month) == etag and path.is_file():
                    continue
                try:
                    info = self.store.get_file(f"{prefix}{month}.sqlite3", path)
                except NotFound:
                    # Deleted between list and get: forget it rather than fail the question.
                    listed.pop(month)
                    continue
                state[month] = info.etag
                self.downloads += 1
                log.info("fetched shard %s%s.sqlite3 (etag %s, %d bytes)", prefix, month,
                         info.etag, info.size)
            for month in sorted(set(state) - set(listed)):
                (gdir / f"{month}.sqlite3").unlink(missing_ok=True)
                state.pop(month)
                log.info("dropped shard %s%s.sqlite3: no longer published", prefix, month)
            self._save_state(gdir, state)
            return [gdir / f"{m}.sqlite3" for m in sorted(listed)]
