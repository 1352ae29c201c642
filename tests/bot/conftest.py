"""Fixtures shared by the bot's command tests."""

from __future__ import annotations

import pytest
from bot_fakes import close_services, make_services


@pytest.fixture
def services(settings):
    """The bot's client, store, spool and state on the test's data directory."""
    svc = make_services(settings)
    yield svc
    close_services(svc)
