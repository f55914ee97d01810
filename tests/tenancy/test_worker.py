"""A Dramatiq actor runs on a real worker over the configured broker and writes to the DB.

In CI the broker is Redis, then RabbitMQ (DRAMATIQ_BROKER_URL); without it, the embedded
in-process broker.
"""

from __future__ import annotations

import uuid

import dramatiq
import pytest
from django.conf import settings

from osmos.tenancy.models import Organization

QUEUE = f"test-foundation-{uuid.uuid4().hex[:8]}"


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def create_organization(slug: str) -> None:
    Organization.objects.create(name=slug, slug=slug)


@pytest.mark.django_db(transaction=True)
def test_actor_runs_on_a_real_worker_and_writes_to_the_database():
    broker = dramatiq.get_broker()
    expected = "dramatiq.brokers.stub.StubBroker"
    if settings.DRAMATIQ_BROKER_URL.startswith("redis"):
        expected = "dramatiq.brokers.redis.RedisBroker"
    elif settings.DRAMATIQ_BROKER_URL.startswith("amqp"):
        expected = "dramatiq.brokers.rabbitmq.RabbitmqBroker"
    assert f"{type(broker).__module__}.{type(broker).__name__}" == expected
    worker = dramatiq.Worker(broker, queues={QUEUE}, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        for n in range(3):
            create_organization.send(f"from-worker-{n}")
        broker.join(QUEUE, timeout=30_000)
        worker.join()
    finally:
        worker.stop()
    assert sorted(Organization.objects.values_list("slug", flat=True)) == [
        "from-worker-0",
        "from-worker-1",
        "from-worker-2",
    ]
