"""The delivery engine: executes a run, chunk by chunk, and accounts for every record.

How a run is executed (``run_execute``, called by the ``execute_run`` actor):

1. **Lease.** The worker takes the run's lease (a token in the row) unless another worker
   holds it with a fresh heartbeat; a heartbeat thread refreshes ``heartbeat_at`` while the
   worker holds it, and notices when the lease was taken away (the sweep revokes a lease
   whose heartbeat is stale) or the run was cancelled.
2. **Plan.** Once per run, its records are cut into ``RunChunk`` rows (batch mode:
   ``batch_size`` records; single mode: settings.DELIVERY_SINGLE_CHUNK_RECORDS), each with
   an ``Idempotency-Key`` derived from the run and the chunk's sequence range.
3. **Deliver** each pending chunk: rows are streamed from the database, mapped, checked
   against the destination schema (invalid records fail, unsent), and sent through the
   destination's gate (``osmos.outbound.gate``: its rate limit and concurrency across runs,
   processes and hosts, and the pauses it asked for). Batch mode serializes the chunk into a
   spooled temporary file and sends it as one JSON array, bisecting on a permanent 4xx when
   ``split_failed_batches`` is on; single mode sends one object per request, from the
   run's thread through libcurl, ``max_concurrency`` at a time over keep-alive
   connections, in steps of about a second.
4. **Confirm** each step in one transaction, under the run's row lock and only while the
   lease is still ours: its failure rows, the chunk's ``done`` state (or, single mode, how
   far it got: ``confirmed_through``) and the run's counters. So a confirmed record is never
   sent again, and an unconfirmed one is sent again after a crash with the same idempotency
   key.
5. **Wait** (SPEC §5.1): a chunk that fails transiently (after one quick retry) stores its
   attempt count, next attempt time and last error; the run becomes ``waiting``, releases
   the lease and the worker, and is resumed by a delayed message for that time or by the
   scheduler's sweep. Its records fail only once settings.DELIVERY_RETRY_SCHEDULE is
   exhausted. The destination's health (``connectors.health``) learns of failures and
   successes: a failing destination is tried by one run at a time, a paused one (410) by
   none until a person resumes it.
6. **Finish**: the state follows from the counters; a cancelled run first records its
   unsent records as failed. ``records_delivered + records_failed == records_total``.

A worker stops taking new chunks after settings.DELIVERY_RUN_SLICE_SECONDS, releases the
lease and enqueues the run again, so one long run does not hold a worker thread for hours.
A run found without a live worker more than settings.RUN_MAX_RESUMES times fails its unsent
records instead of being resumed forever.

Before taking the lease the run must be allowed to start: an earlier active run of its
pipeline, or settings.DELIVERY_MAX_ACTIVE_RUNS_PER_ORGANIZATION runs of its organization
already executing, send it back to ``queued`` with the reason (it is enqueued again when a
place frees); a failing or paused destination makes it wait. Leases, heartbeats, admission
and waiting are in ``pipelines.leases``.

Step 2 lives in ``pipelines.plan``; step 3 in ``pipelines.senders`` (batch mode, the
request log), ``pipelines.single`` (single mode, through libcurl: ``osmos.outbound.curl``),
``pipelines.records`` (selection, mapping, validation, spooled bodies) and
``pipelines.retries`` (one request, the schedule); step 4 in ``pipelines.confirm``. This
module owns the lease, the waiting and the end, and calls the others in order. It imports
nothing above it: runs are enqueued through ``pipelines.queue``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connectors.health import (
    health_pause,
    health_record_failure,
    health_record_success,
)
from connectors.models import WriteMode
from connectors.schema import compile_schema
from osmos.outbound.client import DeliveryError, OutboundSession
from osmos.outbound.curl import CurlSession
from osmos.outbound.gate import destination_gate
from pipelines.confirm import confirm_step, fail_unsent
from pipelines.leases import (
    PAUSED_REASON,
    Heartbeat,
    locked_if_ours,
    run_acquire,
    run_set_waiting,
    wake_queued_on_commit,
)
from pipelines.models import ChunkState, Run, RunChunk, RunState
from pipelines.notify import run_outcome_notify
from pipelines.plan import pending_chunks, plan_run
from pipelines.queue import run_enqueue
from pipelines.records import (
    record_preparer,
)
from pipelines.retries import GONE, Target, Throttled, gave_up_reason, next_delay
from pipelines.senders import CANCELLED_REASON, BatchSender, RequestRecorder
from pipelines.single import SingleSender
from pipelines.single_threads import ThreadedSingleSender

__all__ = ["CANCELLED_REASON", "GAVE_UP_REASON", "final_state", "run_execute"]

logger = logging.getLogger(__name__)

GAVE_UP_REASON = (
    "Not sent: the run was interrupted {resumes} times (its worker stopped each time) and "
    "gave up; retry the failed records once the cause is fixed."
)


# --- the run -------------------------------------------------------------------------------------


def _finish(run_id: uuid.UUID, token: uuid.UUID) -> None:
    """Account for the unsent records of a cancelled (or given up) run, then close the run."""
    run = Run.objects.select_related("pipeline").get(pk=run_id)
    unsent_reason = None
    if run.state == RunState.CANCELLED:
        unsent_reason = CANCELLED_REASON
    elif run.resumes > settings.RUN_MAX_RESUMES:
        unsent_reason = GAVE_UP_REASON.format(resumes=run.resumes)
    if unsent_reason is not None:
        for chunk in pending_chunks(run_id):
            if not fail_unsent(run, token, chunk, unsent_reason):
                return
    with transaction.atomic():
        run = locked_if_ours(run_id, token)
        if run is None or RunChunk.objects.filter(run_id=run_id, state=ChunkState.PENDING).exists():
            return
        if run.records_delivered + run.records_failed != run.records_total:
            logger.error(
                "run %s: %s delivered + %s failed != %s total",
                run_id,
                run.records_delivered,
                run.records_failed,
                run.records_total,
            )
        if run.state != RunState.CANCELLED:
            run.state = final_state(delivered=run.records_delivered, failed=run.records_failed)
        run.finished_at = timezone.now()
        run.lease_token = None
        run.waiting_until = None
        run.save(update_fields=["state", "finished_at", "lease_token", "waiting_until"])
        run_outcome_notify(run=run, pipeline_name=run.pipeline.name)
        wake_queued_on_commit(run)


def final_state(*, delivered: int, failed: int) -> str:
    if failed == 0:
        return RunState.SUCCEEDED
    if delivered == 0:
        return RunState.FAILED
    return RunState.PARTIALLY_FAILED


def _release(run_id: uuid.UUID, token: uuid.UUID) -> None:
    """Give the lease back and enqueue the run again (its time slice is over)."""
    with transaction.atomic():
        if Run.objects.filter(pk=run_id, lease_token=token).update(lease_token=None):
            transaction.on_commit(lambda: run_enqueue(run_id=run_id))


def run_execute(*, run_id: uuid.UUID) -> None:
    """Execute (or resume, or settle a cancelled) run; safe to call any number of times.

    Returns at once when the run is finished or another worker holds it.
    """
    token = run_acquire(run_id)
    if token is None:
        return
    with Heartbeat(run_id=run_id, token=token) as heartbeat:
        run = Run.objects.select_related(
            "pipeline__destination__destination", "pipeline__source"
        ).get(pk=run_id)
        if run.planned_at is None:
            plan_run(run, token)
        gave_up = run.resumes > settings.RUN_MAX_RESUMES
        if gave_up:
            logger.error("run %s was resumed %s times; giving up", run_id, run.resumes)
        elif run.state != RunState.CANCELLED and not _deliver_pending(run, token, heartbeat):
            return
        if heartbeat.lost:
            return
        _finish(run_id, token)


def _deliver_pending(run: Run, token: uuid.UUID, heartbeat: Heartbeat) -> bool:
    """Send and confirm pending chunks; False when the run must stop here (lease or time,
    or a chunk that waits for its next attempt)."""
    destination = run.pipeline.destination
    settings_row = destination.destination
    prepare = record_preparer(
        mapping=run.mapping,
        source_fields=run.pipeline.source.field_specs(),
        destination_fields=destination.field_specs(),
        schema=compile_schema(fields=destination.field_specs()),
    )
    target = Target.of(settings_row)
    recorder = RequestRecorder(run=run)
    deadline = time.monotonic() + settings.DELIVERY_RUN_SLICE_SECONDS
    single = settings_row.write_mode == WriteMode.SINGLE
    concurrency = settings_row.max_concurrency
    if settings_row.rate_limit_per_second is not None:
        # More threads than requests allowed in a second would only queue at the gate.
        concurrency = min(concurrency, max(1, math.ceil(settings_row.rate_limit_per_second)))
    health = _HealthNotes(destination.pk)
    # Rate limit, concurrency and pauses across runs, processes and hosts (osmos.outbound).
    gate = destination_gate(
        destination.pk,
        rate_per_second=settings_row.rate_limit_per_second,
        max_concurrency=settings_row.max_concurrency,
    )
    # Single mode through libcurl (osmos.outbound.curl) unless the threaded sender is chosen.
    curl = single and settings.DELIVERY_SINGLE_CLIENT == "curl"
    client = CurlSession if curl else OutboundSession
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(client(pool_size=concurrency))
        common: dict[str, Any] = {
            "run": run,
            "session": session,
            "target": target,
            "prepare": prepare,
            "abort": heartbeat.abort,
            "recorder": recorder,
            "gate": gate,
        }
        sender: BatchSender | SingleSender | ThreadedSingleSender
        if not single:
            sender = BatchSender(split=settings_row.split_failed_batches, **common)
        elif curl:
            sender = SingleSender(concurrency=concurrency, **common)
        else:
            # The threaded sender's pool: one thread per request in flight.
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=concurrency))
            sender = ThreadedSingleSender(pool=pool, concurrency=concurrency, **common)
        return _deliver_chunks(run, token, heartbeat, sender, health, deadline)


def _deliver_chunks(
    run: Run,
    token: uuid.UUID,
    heartbeat: Heartbeat,
    sender: BatchSender | SingleSender | ThreadedSingleSender,
    health: _HealthNotes,
    deadline: float,
) -> bool:
    """Send and confirm the pending chunks in order (see ``_deliver_pending``)."""
    exhausted = False
    for position, chunk in enumerate(pending_chunks(run.id)):
        if heartbeat.abort.is_set():
            break
        # At least one chunk per slice, so that every message makes progress.
        if position and time.monotonic() > deadline:
            _release(run.id, token)
            return False
        # Closed when the engine stops early too (and the sender's rows cursor with it).
        with contextlib.closing(sender.deliver(chunk)) as steps:
            for step in steps:
                try:
                    confirmed = confirm_step(run_id=run.id, token=token, chunk=chunk, step=step)
                finally:
                    step.outcome.failures.close()
                if confirmed is None:
                    return False
                if step.wait is None and step.outcome.delivered:
                    health.success()
                if confirmed.state == RunState.CANCELLED:
                    # Seen under the row lock: stop now rather than at the next heartbeat.
                    heartbeat.cancelled = True
                    heartbeat.abort.set()
                    return True
                if step.wait is not None:
                    if _wait(run, token, chunk, step.wait, exhausted=exhausted):
                        return False
                    # The schedule is exhausted and the chunk's records failed; the run goes
                    # on, and its later chunks fail at their first such failure (the
                    # destination has been failing for the whole schedule already).
                    exhausted = True
                    break
    return True


class _HealthNotes:
    """Tells the destination's health about successes, without a write per step: only the
    first success of the run and only when the destination is not plainly healthy."""

    def __init__(self, destination_id: uuid.UUID) -> None:
        self.destination_id = destination_id
        self._pending = True

    def success(self) -> None:
        if not self._pending:
            return
        self._pending = False
        health_record_success(connector_id=self.destination_id)


def _wait(
    run: Run, token: uuid.UUID, chunk: RunChunk, error: DeliveryError, *, exhausted: bool
) -> bool:
    """The chunk failed in a way that makes it wait: store its next attempt and set the run
    ``waiting`` (True), or, once its retry schedule is exhausted, fail its records (False:
    the run goes on with its next chunk).

    ``410 Gone`` pauses the destination instead: the run waits, without a time, until a
    person resumes it, and the attempt does not count against the schedule.
    """
    destination_id = run.pipeline.destination_id
    now = timezone.now()
    if isinstance(error, Throttled):
        with transaction.atomic():
            locked = locked_if_ours(run.id, token)
            if locked is None:
                return True
            until = now + timedelta(seconds=error.retry_after or 0.05)
            run_set_waiting(locked, until=until, error=locked.last_error or error.message)
            wake_queued_on_commit(locked)
        return True
    if error.status == GONE:
        health_pause(connector_id=destination_id, error=error.message)
        with transaction.atomic():
            locked = locked_if_ours(run.id, token)
            if locked is None:
                return True
            RunChunk.objects.filter(pk=chunk.pk).update(last_error=error.message)
            run_set_waiting(locked, until=None, error=PAUSED_REASON.format(error=error.message))
            wake_queued_on_commit(locked)
        return True
    attempts = chunk.attempts + 1
    first_failed_at = chunk.first_failed_at or now
    delay = next_delay(
        failed_attempts=attempts,
        retry_after=error.retry_after,
        schedule=settings.DELIVERY_RETRY_SCHEDULE,
    )
    if delay is None or exhausted:
        reason = gave_up_reason(
            last_error=error.message,
            attempts=attempts,
            seconds=(now - first_failed_at).total_seconds(),
        )
        fail_unsent(run, token, chunk, reason, status=error.status, excerpt=error.response_excerpt)
        return False
    next_attempt_at = now + timedelta(seconds=delay)
    health_record_failure(
        connector_id=destination_id, error=error.message, next_attempt_at=next_attempt_at
    )
    with transaction.atomic():
        locked = locked_if_ours(run.id, token)
        if locked is None:
            return True
        RunChunk.objects.filter(pk=chunk.pk).update(
            attempts=attempts,
            first_failed_at=first_failed_at,
            next_attempt_at=next_attempt_at,
            last_error=error.message,
        )
        if locked.state == RunState.CANCELLED:
            transaction.on_commit(lambda: run_enqueue(run_id=run.id))
            Run.objects.filter(pk=run.id).update(lease_token=None)
            return True
        message = f"Attempt {attempts} failed: {error.message}"
        run_set_waiting(locked, until=next_attempt_at, error=message)
        wake_queued_on_commit(locked)
    return True
