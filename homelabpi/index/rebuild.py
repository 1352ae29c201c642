"""`homelabpi reindex`: SQLite is derived, so it can always be rebuilt from the store.

The new index is built beside the old one and swapped in only when complete, so an interrupted
rebuild leaves the previous index in place.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable

from homelabpi import transcripts
from homelabpi.errors import HomeLabPiError
from homelabpi.index import indexer
from homelabpi.index.shards import Shards
from homelabpi.runtime import Runtime

log = logging.getLogger(__name__)


def rebuild(rt: Runtime, progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Re-index every stored transcript and query log; returns counts by outcome."""
    final = rt.settings.index_dir
    building = final.with_name(final.name + ".rebuilding")
    shutil.rmtree(building, ignore_errors=True)
    shards = Shards(building, part_bytes=rt.settings.shard_part_bytes)
    counts = {"transcripts": 0, "queries": 0, "skipped": 0}
    keys = [o for prefix in ("transcripts/", "queries/") for o in rt.store.list(prefix)]
    try:
        for info in keys:
            try:
                body = rt.store.get(info.key)
                guild = info.key.split("/")[1]
                if info.key.startswith("queries/"):
                    doc = json.loads(body)
                    indexer.index_query(shards, info.key, info.etag, doc)
                    counts["queries"] += 1
                else:
                    doc = transcripts.load(body, info.key)
                    if doc["guild"] != guild:
                        raise HomeLabPiError(f"{info.key}: names guild {doc['guild']!r}")
                    indexer.index_transcript(shards, info.key, info.etag, doc, rt.embedder)
                    counts["transcripts"] += 1
            except (HomeLabPiError, ValueError, KeyError) as exc:
                counts["skipped"] += 1
                log.warning("reindex skipped %s: %s", info.key, exc)
            if progress:
                progress(info.key)
    finally:
        shards.close()
    rt.shards.close()
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    building.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    log.info("reindexed %(transcripts)d transcripts and %(queries)d queries "
             "(%(skipped)d skipped)", counts)
    return counts
