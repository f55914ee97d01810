"""Who may execute a run, and when: leases, heartbeats, admission and waiting.

- **Lease.** A worker executes a run only while it holds the run's lease (a token in the
  row) with a fresh heartbeat; ``Heartbeat`` refreshes it from a thread and notices a lost
  lease or a cancel.
- **Admission** (``run_acquire``): before taking the lease, a run must be allowed to start.
  An earlier active run of its pipeline (records go in order), or
  settings.DELIVERY_MAX_ACTIVE_RUNS_PER_ORGANIZATION runs of its organization already
  executing, send it back to ``queued`` with the reason; it is enqueued again when a place
  frees (``wake_queued_on_commit``) and by the sweep after RUN_REQUEUE_AFTER_SECONDS. A
  failing destination lets one run at a time try it (``connectors.health.probe_claim``); the
  others, and every run of a paused destination, become ``waiting``.
- **Waiting** (``run_set_waiting``): the run holds no lease and no worker; a delayed message
  for ``waiting_until`` resumes it (and the scheduler's sweep, if the message is lost).
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction

from connectors.health import probe_claim
from connectors.models import HealthState
from osmos.tenancy.models import Organization
from pipelines.clock import database_now, database_now_sql, on_database_clock
from pipelines.models import ACTIVE_RUN_STATES, Run, RunState
from pipelines.queue import run_enqueue

logger = logging.getLogger(__name__)


def _stale_before(now: Any) -> Any:
    """Heartbeats older than this are dead. ``now`` is the database's clock, as every
    heartbeat is: a host whose own clock is minutes off neither steals a live lease nor
    keeps a dead one (pipelines.clock)."""
    return now - timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS)


ORGANIZATION_LIMIT_REASON = (
    "Waiting for one of the organization's {limit} runs in progress to end "
    "(at most {limit} runs at once)."
)
EARLIER_RUN_REASON = "Waiting for an earlier run of this pipeline to end (records go in order)."
PAUSED_REASON = "The destination is paused (it answered 410 Gone): resume it to go on. {error}"
FAILING_REASON = "The destination is failing; another run is trying it. {error}"


def run_acquire(run_id: uuid.UUID) -> uuid.UUID | None:
    """Take the run's lease; None when it is finished, gone, held by a live worker, waiting
    for a later time, or handed back (to the queue: the organization's limit of runs at once,
    an earlier run of its pipeline; or to waiting: its destination is failing or paused).
    """
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.finished_at is not None:
            return None
        now = database_now()
        live = run.heartbeat_at is not None and run.heartbeat_at > _stale_before(now)
        if run.lease_token is not None and live:
            return None
        if run.state == RunState.WAITING and (run.waiting_until is None or run.waiting_until > now):
            return None  # an early or duplicate message: the run's time has not come
        if run.state != RunState.CANCELLED and not _may_start(run, now):
            return None
        run.lease_token = uuid.uuid4()
        run.heartbeat_at = now
        run.attempts += 1
        if run.state in (RunState.QUEUED, RunState.WAITING):
            run.state = RunState.RUNNING
        run.waiting_until = None
        run.queued_reason = ""
        run.started_at = run.started_at or now
        run.save(
            update_fields=[
                "lease_token",
                "heartbeat_at",
                "attempts",
                "state",
                "started_at",
                "waiting_until",
                "queued_reason",
            ]
        )
        return run.lease_token


def _may_start(run: Run, now: Any) -> bool:
    """Whether the (locked) run may execute now; if not, it is handed back with the reason.

    Runs in the caller's transaction. The organization's row is locked to count its runs,
    so two workers never both take the last place.
    """
    if Run.objects.filter(
        pipeline_id=run.pipeline_id,
        created_at__lt=run.created_at,
        state__in=(*ACTIVE_RUN_STATES, RunState.CANCELLED),
        finished_at__isnull=True,
    ).exists():
        _hand_back(run, reason=EARLIER_RUN_REASON, now=now)
        return False
    Organization.objects.select_for_update().filter(pk=run.organization_id).first()
    limit = settings.DELIVERY_MAX_ACTIVE_RUNS_PER_ORGANIZATION
    running = (
        Run.objects.filter(
            organization_id=run.organization_id,
            state__in=(RunState.RUNNING, RunState.CANCELLED),
            lease_token__isnull=False,
            heartbeat_at__gt=_stale_before(now),
        )
        .exclude(pk=run.pk)
        .count()
    )
    if running >= limit:
        _hand_back(run, reason=ORGANIZATION_LIMIT_REASON.format(limit=limit), now=now)
        return False
    destination_id = Run.objects.filter(pk=run.pk).values_list(
        "pipeline__destination_id", flat=True
    )[0]
    hold = settings.RUN_HEARTBEAT_TIMEOUT_SECONDS
    claim = probe_claim(connector_id=destination_id, hold_seconds=hold)
    if claim.state == HealthState.PAUSED:
        run_set_waiting(run, until=None, error=PAUSED_REASON.format(error=claim.last_error).strip())
        return False
    if claim.retry_at is not None:
        reason = FAILING_REASON.format(error=claim.last_error).strip()
        run_set_waiting(run, until=claim.retry_at, error=reason)
        return False
    return True


def _hand_back(run: Run, *, reason: str, now: Any) -> None:
    """Back to ``queued``, not ``running``: waiting is not a crash, and the stale-run sweep
    (which counts resumes) leaves a queued run alone. ``enqueued_at`` is now: whatever frees
    the place enqueues the run again, and the sweep does after RUN_REQUEUE_AFTER_SECONDS.
    ``now``: the database's clock, which the sweep compares ``enqueued_at`` with."""
    run.state = RunState.QUEUED
    run.queued_reason = reason[:200]
    run.lease_token = None
    run.enqueued_at = now
    run.save(update_fields=["state", "queued_reason", "lease_token", "enqueued_at"])


def run_set_waiting(run: Run, *, until: Any, error: str) -> None:
    """``waiting`` until ``until`` (None: until its destination is resumed), with a message
    sent for that time (the sweep sends it again if it is lost).

    ``until`` is computed on this host's clock (now + a delay); it is stored on the
    database's, which ``run_acquire`` and the sweep compare it with."""
    if until is not None:
        until = on_database_clock(until)
    run.state = RunState.WAITING
    run.waiting_until = until
    run.last_error = error
    run.lease_token = None
    run.save(update_fields=["state", "waiting_until", "last_error", "lease_token"])
    if until is not None:
        delay = max((until - database_now()).total_seconds(), 0.0)
        transaction.on_commit(lambda: run_enqueue(run_id=run.pk, delay_seconds=delay))


def locked_if_ours(run_id: uuid.UUID, token: uuid.UUID) -> Run | None:
    """The run locked for this transaction, or None when our lease was taken away."""
    run = Run.objects.select_for_update().filter(pk=run_id).first()
    if run is None or run.lease_token != token:
        return None
    return run


class Heartbeat:
    """Refreshes the run's heartbeat in a thread; sets ``abort`` on a lost lease or a cancel."""

    def __init__(self, *, run_id: uuid.UUID, token: uuid.UUID) -> None:
        self.run_id = run_id
        self.token = token
        self.abort = threading.Event()
        self.lost = False
        self.cancelled = False
        self._stop = threading.Event()
        # Often enough to stay fresh, and to notice a cancel within seconds.
        self._interval = min(settings.RUN_HEARTBEAT_TIMEOUT_SECONDS / 4, 5.0)
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat {run_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self._interval):
                self.beat()
        finally:
            connection.close()

    def beat(self) -> None:
        try:
            updated = Run.objects.filter(pk=self.run_id, lease_token=self.token).update(
                heartbeat_at=database_now_sql()
            )
            state = Run.objects.filter(pk=self.run_id).values_list("state", flat=True).first()
        except DatabaseError:
            # A dropped connection: try again at the next beat; a long outage makes the lease
            # stale and the run is resumed elsewhere, which is the right outcome.
            logger.warning("heartbeat of run %s failed", self.run_id, exc_info=True)
            close_old_connections()
            return
        if not updated:
            self.lost = True
            self.abort.set()
        elif state == RunState.CANCELLED:
            self.cancelled = True
            self.abort.set()


def wake_queued_on_commit(run: Run) -> None:
    """A place is free (the run ended or waits): enqueue the runs handed back for want of it,
    oldest first (the later run of the pipeline, and the organization's queued runs)."""
    limit = settings.DELIVERY_MAX_ACTIVE_RUNS_PER_ORGANIZATION
    handed_back = Run.objects.filter(
        organization_id=run.organization_id, state=RunState.QUEUED
    ).exclude(queued_reason="")
    ids = list(handed_back.order_by("created_at").values_list("id", flat=True)[:limit])
    for run_id in ids:
        transaction.on_commit(lambda run_id=run_id: run_enqueue(run_id=run_id))
