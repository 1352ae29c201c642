"""One log format for every process: CLI, gateway, function containers and the bot."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str = "INFO") -> None:
    """Log to stderr at `level`, unless the host (a test runner, an app) already set up logging."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level.upper(), stream=sys.stderr, format=FORMAT)
    else:
        root.setLevel(level.upper())
