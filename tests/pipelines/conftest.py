"""Fixtures of the pipeline tests: the customer's API on loopback and a real worker.

The sink is ``tests.support.sink.Sink`` (tests program it with ``sink.behave``); the helpers
that build sources, destinations and pipelines live in ``tests.support.delivery``.

The worker is a real ``dramatiq.Worker`` on the configured broker: the in-process stub
broker by default, Redis when ``DRAMATIQ_BROKER_URL`` says so.
"""

from __future__ import annotations

from collections.abc import Iterator

import dramatiq
import pytest

from tests.support.sink import Sink


@pytest.fixture
def sink(settings) -> Iterator[Sink]:
    """The customer's API on loopback (``tests.support.sink``), answering 200 until told."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with Sink() as instance:
        yield instance


@pytest.fixture(autouse=True)
def fast_delivery(settings):
    """A compressed retry schedule (3 attempts in all) and no quick retry, so retry
    tests take a fraction of a second."""
    settings.DELIVERY_RETRY_SCHEDULE = (0.05, 0.05)
    settings.DELIVERY_QUICK_RETRY_SECONDS = 0
    settings.DELIVERY_RETRY_AFTER_CAP_SECONDS = 5


@pytest.fixture
def broker():
    broker = dramatiq.get_broker()
    broker.flush_all()
    yield broker
    broker.flush_all()


@pytest.fixture
def worker(broker, transactional_db):
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    yield worker
    worker.stop()
