"""Dramatiq actors of the pipelines app: thin, idempotent, taking ids only."""

from __future__ import annotations

import uuid

import dramatiq

from osmos.observability import context as log_context
from pipelines import delivery
from pipelines.queue import EXECUTE_RUN_ACTOR, QUEUE_NAME

# Dramatiq's own retries stay off: the engine retries requests itself with its bookkeeping,
# and a run whose worker failed is resumed by the scheduler's sweep from the database.
# The time limit bounds one slice of a run (settings.DELIVERY_RUN_SLICE_SECONDS of new
# chunks plus the chunk in flight, whose retries can wait minutes); a run cut short by it is
# resumed by the sweep like a crashed one.
RUN_TIME_LIMIT_MS = 2 * 60 * 60 * 1000


@dramatiq.actor(
    actor_name=EXECUTE_RUN_ACTOR, queue_name=QUEUE_NAME, max_retries=0, time_limit=RUN_TIME_LIMIT_MS
)
def execute_run(run_id: str) -> None:
    """Execute, resume or settle the run; a no-op when it is finished or held elsewhere."""
    with log_context.bind(run=run_id):
        delivery.run_execute(run_id=uuid.UUID(run_id))
