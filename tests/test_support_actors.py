"""tests/support/actors.py: an exception inside an actor fails the test at once."""

from __future__ import annotations

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from tests.support.actors import join_actors, running_worker

QUEUE = "support-actors-test"
done: list[int] = []


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def _records_its_argument(value: int) -> None:
    done.append(value)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def _fails(value: int) -> None:
    raise RuntimeError(f"actor failed on {value}")


def test_join_actors_returns_once_every_message_is_processed():
    done.clear()
    with running_worker() as worker:
        for value in range(3):
            _records_its_argument.send(value)
        join_actors(worker, queues=[QUEUE])
    assert sorted(done) == [0, 1, 2]


@pytest.mark.skipif(
    not isinstance(dramatiq.get_broker(), StubBroker),
    reason="only the in-process broker reports an actor's exception to join()",
)
def test_an_exception_inside_an_actor_is_raised_by_join_actors():
    with running_worker() as worker:
        _fails.send(7)
        with pytest.raises(RuntimeError, match="actor failed on 7"):
            join_actors(worker, queues=[QUEUE])
