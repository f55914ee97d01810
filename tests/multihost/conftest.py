"""Fixtures of the multi-host tests: a test network of namespaces, its own broker, children."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.multihost.brokers import broker_kind, own_broker, why_not
from tests.multihost.netns import TestNetwork, available
from tests.reliability.processes import Children

_WHY_NOT = available()


@pytest.fixture
def network():
    if _WHY_NOT is not None:
        pytest.skip(f"multi-host tests skipped: {_WHY_NOT}")
    if connection.vendor != "postgresql":
        pytest.skip("multi-host tests skipped: the hosts share the test database: PostgreSQL only")
    net = TestNetwork()
    try:
        yield net
    finally:
        ports = sorted({port for relay in net.relays for port in relay.peers})
        net.close()
        _end_sessions_of_gone_hosts(ports)


def _end_sessions_of_gone_hosts(ports: list[int]) -> None:
    """The hosts are gone; so must their PostgreSQL sessions be (reached through the relays,
    they come from these local ports). One whose end the server has not yet noticed would
    hold up the next test's flush of the tables."""
    if not ports:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND client_addr = '127.0.0.1' "
            "AND client_port = ANY(%s) AND pid <> pg_backend_pid()",
            [ports],
        )


@pytest.fixture
def broker():
    """This test's own broker, of the kind DRAMATIQ_BROKER_URL names (Redis by default)."""
    kind = broker_kind()
    reason = why_not(kind)
    if reason is not None:
        pytest.skip(f"multi-host tests skipped: {reason}")
    own = own_broker(kind)
    own.start()
    yield own
    own.stop()


@pytest.fixture
def children(tmp_path):
    group = Children(tmp_path)
    yield group
    group.kill_all()


@pytest.fixture(autouse=True)
def test_network_destinations(settings):
    """The customer's API is reached at an address of the test network."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "198.18.77.0/24"]
