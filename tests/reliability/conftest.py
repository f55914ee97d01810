"""Fixtures of the reliability tests: one of each kind of tenant object in organization A."""

from __future__ import annotations

import pytest

from tests.support.factories import build_world


@pytest.fixture
def world_a(org_a, member, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return build_world(org_a, member_user=member)


@pytest.fixture(autouse=True)
def loopback_destinations(settings):
    """Destinations here point at sinks on 127.0.0.1, which the address guard allows in tests
    only when listed (the guard itself is tested in tests/connectors and tests/pipelines)."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
