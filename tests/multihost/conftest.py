"""Fixtures of the multi-host tests: a test network of namespaces, its own Redis, children."""

from __future__ import annotations

import shutil

import pytest

from tests.multihost.netns import TestNetwork, available
from tests.reliability.processes import Children, OwnRedis, free_port

_WHY_NOT = available()


@pytest.fixture
def network():
    if _WHY_NOT is not None:
        pytest.skip(f"multi-host tests skipped: {_WHY_NOT}")
    net = TestNetwork()
    try:
        yield net
    finally:
        net.close()


@pytest.fixture
def own_redis():
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    redis = OwnRedis(free_port())
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def children(tmp_path):
    group = Children(tmp_path)
    yield group
    group.kill_all()


@pytest.fixture(autouse=True)
def test_network_destinations(settings):
    """The customer's API is reached at an address of the test network."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "198.18.77.0/24"]
