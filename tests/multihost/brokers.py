"""The broker of one multi-host test: its own, never the machine's shared queues.

Which one follows the environment's DRAMATIQ_BROKER_URL, so that the same tests prove the
contract on both brokers the product supports (SPEC §7; CI runs them with each):

- ``redis://…`` or unset: ``OwnRedis``, a ``redis-server`` of this test on a free port,
  without persistence;
- ``amqp://…``: ``OwnVhost``, a virtual host of this test on that RabbitMQ (made with
  ``rabbitmqctl``, deleted at the end), so its queues are its own.

Both ``stop()`` with every message lost and every connection dropped (Redis: the process is
killed; RabbitMQ: the virtual host is deleted, which closes its connections and drops its
queues, and new connections are refused until ``start()`` makes it again), the worst a
broker restart can do.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import uuid
from urllib.parse import urlsplit

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from tests.reliability.processes import OwnRedis, free_port

EXECUTE_RUN_ACTOR = "execute_run"  # pipelines.queue: sent by name, as the product does
_vhosts = itertools.count(1)


def broker_kind() -> str:
    url = os.environ.get("DRAMATIQ_BROKER_URL", "")
    return "rabbitmq" if url.startswith(("amqp://", "amqps://")) else "redis"


def why_not(kind: str) -> str | None:
    """None when this kind of broker can be had here, else why not."""
    if kind == "rabbitmq":
        return None if shutil.which("rabbitmqctl") else "rabbitmqctl is not installed"
    return None if shutil.which("redis-server") else "redis-server is not installed"


class RedisOfTheTest(OwnRedis):
    kind = "redis"

    def __init__(self) -> None:
        super().__init__(free_port())

    def url_at(self, address: str) -> str:
        return f"redis://{address}:{self.port}/0"

    def client(self) -> dramatiq.Broker:
        return RedisBroker(url=self.url, middleware=[])


class OwnVhost:
    """A virtual host of this test on the RabbitMQ of DRAMATIQ_BROKER_URL."""

    kind = "rabbitmq"

    def __init__(self) -> None:
        base = urlsplit(os.environ["DRAMATIQ_BROKER_URL"])
        self.user, self.password = base.username or "guest", base.password or "guest"
        self.port = base.port or 5672
        self.name = f"osmos_test_{os.getpid()}_{next(_vhosts)}_{uuid.uuid4().hex[:6]}"

    @property
    def url(self) -> str:
        return self.url_at("127.0.0.1")

    def url_at(self, address: str) -> str:
        return f"amqp://{self.user}:{self.password}@{address}:{self.port}/{self.name}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._ctl("add_vhost", self.name)
        self._ctl("set_permissions", "-p", self.name, self.user, ".*", ".*", ".*")

    def stop(self) -> None:
        subprocess.run(
            ["rabbitmqctl", "-q", "delete_vhost", self.name], capture_output=True, timeout=60
        )

    def client(self) -> dramatiq.Broker:
        return RabbitmqBroker(url=self.url, middleware=[], confirm_delivery=True)


def own_broker(kind: str) -> RedisOfTheTest | OwnVhost:
    return OwnVhost() if kind == "rabbitmq" else RedisOfTheTest()


def send_run_message(broker: RedisOfTheTest | OwnVhost, run_id: uuid.UUID) -> None:
    """One more message for the run, as a duplicate or a late redelivery would be."""
    client = broker.client()
    try:
        client.enqueue(
            dramatiq.Message(
                queue_name="default",
                actor_name=EXECUTE_RUN_ACTOR,
                args=(str(run_id),),
                kwargs={},
                options={},
            )
        )
    finally:
        client.close()
