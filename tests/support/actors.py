"""Run actors in a test and let an exception inside one fail the test, not time it out.

Dramatiq's own guide: a real ``Worker`` on the broker, then ``broker.join(queue,
fail_fast=True)`` (which re-raises the exception of a message that died) and
``worker.join()``. Use it where a run ends within one chain of messages; with the Redis broker
``join`` cannot report actor exceptions, so the caller's assertions on the outcome decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import dramatiq
from dramatiq.brokers.stub import StubBroker

JOIN_TIMEOUT_MS = 30_000  # generous: the machine running the suite is shared and loaded


@contextmanager
def running_worker(*, threads: int = 2) -> Iterator[dramatiq.Worker]:
    """A real worker in this process on the configured broker; its queues start empty."""
    broker = dramatiq.get_broker()
    flush_everything(broker)
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=threads)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        flush_everything(broker)


def flush_everything(broker: dramatiq.Broker) -> None:
    """``broker.flush_all()``, and on the in-process broker also forget messages that stopped
    workers took and never acknowledged.

    A ``Worker`` stopped while it holds messages (delayed ones wait in its consumer until
    their time) neither acknowledges nor returns them to the ``StubBroker``, so each stays
    counted as unfinished in its queue for good, and every later ``broker.join`` on that
    queue waits until its timeout although nothing is left to process.
    """
    broker.flush_all()
    if not isinstance(broker, StubBroker):
        return
    for queue in broker.queues.values():
        with queue.all_tasks_done:  # holds the queue's mutex
            queue.unfinished_tasks = len(queue.queue)
            if not queue.unfinished_tasks:
                queue.all_tasks_done.notify_all()


def join_actors(worker: dramatiq.Worker, queues: Iterable[str] = ("default",)) -> None:
    """Wait until every message of ``queues`` (and what they enqueue there) is processed.

    On the in-process broker an exception raised inside an actor whose message was
    dead-lettered is raised here. Raises ``dramatiq.QueueJoinTimeout`` after 30 s.
    """
    broker = worker.broker
    for queue in queues:
        if isinstance(broker, StubBroker):
            broker.join(queue, fail_fast=True, timeout=JOIN_TIMEOUT_MS)
        else:
            broker.join(queue, timeout=JOIN_TIMEOUT_MS)
    worker.join()
