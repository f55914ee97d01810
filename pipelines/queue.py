"""Handing runs to the broker, without importing the actors.

The engine (``pipelines.delivery``) enqueues runs (its own slice is over, a run waits, a
destination recovered) and the actors in ``pipelines.tasks`` call the engine: sending the
message by the actor's name keeps the dependency pointing one way
(tasks → delivery → queue). Services and the scheduler enqueue through here too.
"""

from __future__ import annotations

import logging
import uuid

import dramatiq

from pipelines.clock import database_now, database_now_sql
from pipelines.models import Run, RunState

logger = logging.getLogger(__name__)

EXECUTE_RUN_ACTOR = "execute_run"
QUEUE_NAME = "default"


def run_enqueue(*, run_id: uuid.UUID, delay_seconds: float = 0) -> bool:
    """Send the run's message to the broker (after ``delay_seconds``) and note when; False
    when the broker refused.

    Never raises for a broker failure: the run is in the database and the sweep in
    ``pipelines.scheduler`` sends it again.
    """
    message = dramatiq.Message(
        queue_name=QUEUE_NAME,
        actor_name=EXECUTE_RUN_ACTOR,
        args=(str(run_id),),
        kwargs={},
        options={},
    )
    delay = int(delay_seconds * 1000) if delay_seconds > 0 else None
    try:
        dramatiq.get_broker().enqueue(message, delay=delay)
    except Exception:  # any broker/client error: the sweep retries, the caller must not fail
        logger.warning("could not enqueue run %s; the sweep will retry", run_id, exc_info=True)
        return False
    Run.objects.filter(pk=run_id).update(enqueued_at=database_now_sql())
    return True


def runs_wake_for_destination(*, connector_id: uuid.UUID, **_signal: object) -> int:
    """Make every waiting run of this destination due now and enqueue it (the destination
    recovered or was resumed); how many. Receiver of ``connectors.health.destination_recovered``.
    """
    now = database_now()
    waiting = Run.objects.filter(state=RunState.WAITING, pipeline__destination_id=connector_id)
    run_ids = list(waiting.values_list("id", flat=True))
    woken = 0
    for run_id in run_ids:
        if Run.objects.filter(pk=run_id, state=RunState.WAITING).update(waiting_until=now):
            run_enqueue(run_id=run_id)
            woken += 1
    return woken
