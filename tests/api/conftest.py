"""Fixtures of the API convention tests: destinations on loopback are allowed (the sink)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def allow_loopback(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
