"""torch and transformers, imported and configured once per process.

A function container answers many questions; importing torch (~1 s) and setting its thread pool
once keeps every later call cheap. Hub access is switched off before transformers is imported,
so nothing can reach a model hub at run time.
"""

from __future__ import annotations

import contextlib
import os
import threading

_lock = threading.Lock()
_threads: int | None = None


def init(threads: int) -> None:
    """Import torch with `threads` intra-op threads (first call wins; later calls are cheap)."""
    global _threads
    with _lock:
        if _threads is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch

        n = max(1, int(threads))
        torch.set_num_threads(n)
        with contextlib.suppress(RuntimeError):  # already set, or parallel work has started
            torch.set_num_interop_threads(1)
        with contextlib.suppress(ImportError, AttributeError):  # no progress bars in logs
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        _threads = n


def threads() -> int | None:
    """The thread count torch was configured with, or None before `init`."""
    return _threads
