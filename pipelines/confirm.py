"""Confirming a step of a run: its failures, the chunk's progress and the run's counters, in
one transaction under the run's row lock and only while the lease is ours (so a confirmed
record is never sent again; see ``pipelines.delivery``). Also how a chunk's unsent records
fail at once (a cancelled run, a run that gave up, an exhausted retry schedule)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from osmos.observability import metrics
from pipelines.chunk_reader import chunk_rows
from pipelines.clock import database_now_sql
from pipelines.leases import locked_if_ours
from pipelines.mapping import map_record
from pipelines.models import ChunkState, RecordFailure, Run, RunChunk
from pipelines.records import FailureSpool, Outcome, Step, encode

logger = logging.getLogger(__name__)

FAILURE_INSERT_BATCH = 1000


def confirm_step(*, run_id: uuid.UUID, token: uuid.UUID, chunk: RunChunk, step: Step) -> Run | None:
    """Record a step of the chunk atomically and return the run as locked (its state tells
    whether it was cancelled meanwhile); None, with nothing written, when the lease is lost.

    A step that made progress starts the chunk's retry schedule afresh: the schedule
    counts the failures in a row of the records the chunk is stuck on.
    """
    outcome = step.outcome
    with transaction.atomic():
        run = locked_if_ours(run_id, token)
        if run is None:
            return None
        if RunChunk.objects.filter(pk=chunk.pk, state=ChunkState.DONE).exists():
            return run  # defensive: the lease makes this impossible
        batch: list[RecordFailure] = []
        for sequence, record, reason, status, excerpt in outcome.failures.rows():
            batch.append(
                RecordFailure(
                    organization_id=run.organization_id,
                    run_id=run_id,
                    sequence=sequence,
                    record=record,
                    reason=reason,
                    http_status=status,
                    response_excerpt=excerpt,
                )
            )
            if len(batch) >= FAILURE_INSERT_BATCH:
                RecordFailure.objects.bulk_create(batch)
                batch = []
        RecordFailure.objects.bulk_create(batch)
        failed = outcome.failures.count
        chunk.delivered += outcome.delivered
        chunk.failed += failed
        changes: dict[str, Any] = {"delivered": chunk.delivered, "failed": chunk.failed}
        if step.done:
            if chunk.delivered + chunk.failed != chunk.record_count:
                # The records of a range never change, so this is a bug: say so loudly.
                logger.error(
                    "chunk %s of run %s: %s delivered + %s failed != %s records",
                    chunk.index,
                    run_id,
                    chunk.delivered,
                    chunk.failed,
                    chunk.record_count,
                )
            changes.update(state=ChunkState.DONE, finished_at=timezone.now())
        elif step.through is not None and step.through > (chunk.confirmed_through or 0):
            chunk.confirmed_through = step.through
            changes["confirmed_through"] = step.through
        if outcome.delivered or failed:
            chunk.attempts, chunk.first_failed_at = 0, None
            changes.update(attempts=0, first_failed_at=None, next_attempt_at=None)
        RunChunk.objects.filter(pk=chunk.pk).update(**changes)
        Run.objects.filter(pk=run_id).update(
            records_delivered=F("records_delivered") + outcome.delivered,
            records_failed=F("records_failed") + failed,
            heartbeat_at=database_now_sql(),  # the database's clock, as every heartbeat
        )
    # Counted once the step is committed (a lost lease above returned before this).
    metrics.DELIVERY_RECORDS.labels(outcome="delivered").inc(outcome.delivered)
    metrics.DELIVERY_RECORDS.labels(outcome="failed").inc(failed)
    return run


def unsent_outcome(
    run: Run, chunk: RunChunk, reason: str, *, status: int | None = None, excerpt: str = ""
) -> Outcome:
    """Every record of a chunk not confirmed yet (it will not be sent), failed with
    ``reason``."""
    outcome = Outcome(failures=FailureSpool())
    mapping = tuple(run.mapping.items())
    with contextlib.closing(chunk_rows(run, chunk)) as rows:  # see chunk_texts
        for sequence, data in rows:
            outcome.failures.add(
                sequence=sequence,
                record=encode(map_record(data, mapping)),
                reason=reason,
                status=status,
                excerpt=excerpt,
            )
    return outcome


def fail_unsent(
    run: Run,
    token: uuid.UUID,
    chunk: RunChunk,
    reason: str,
    status: int | None = None,
    excerpt: str = "",
) -> bool:
    """Fail every record of the chunk not confirmed yet with ``reason``; False when the
    lease was lost."""
    outcome = unsent_outcome(run, chunk, reason, status=status, excerpt=excerpt)
    try:
        step = Step(outcome=outcome, done=True)
        return confirm_step(run_id=run.id, token=token, chunk=chunk, step=step) is not None
    finally:
        outcome.failures.close()
