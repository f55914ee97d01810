"""The scheduler: creates due runs from cron schedules, and sweeps runs that lost their way.

``scheduler_tick`` does one pass; ``scheduler_loop`` repeats it every
settings.SCHEDULER_INTERVAL_SECONDS (a thread in the embedded mode, or the
``run_scheduler`` command). Any number of schedulers may run at once:

- a due pipeline is claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` and its ``next_run_at``
  advanced in the same transaction as the run is created, so one tick gives one run (on
  SQLite, IMMEDIATE transactions serialize the schedulers instead);
- the sweeps change a run only with a conditional UPDATE, so two schedulers enqueue a run at
  most twice, which the idempotent actor shrugs off.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F, Q

from ingest.idempotency_keys import idempotency_keys_purge
from ingest.rejections import rejecting_incidents_close
from pipelines import cron
from pipelines.clock import database_now
from pipelines.models import ACTIVE_RUN_STATES, Pipeline, Run, RunState, Trigger
from pipelines.queue import run_enqueue
from pipelines.retention import retention_purge
from pipelines.services import run_create

logger = logging.getLogger(__name__)

# Pipelines claimed per transaction; a tick loops until none is due.
CLAIM_BATCH = 20
SWEEP_BATCH = 200


@dataclass(slots=True)
class TickReport:
    runs_created: int = 0
    ticks_skipped: int = 0
    runs_resumed: int = 0
    runs_enqueued: int = 0
    runs_woken: int = 0
    idempotency_keys_purged: int = 0
    rows_purged: int = 0
    incidents_closed: int = 0


# Retention and the closing of calmed-down incidents run at most this often per process: a
# purge may take RETENTION_TICK_SECONDS, which a tick every second must not pay each time.
HOUSEKEEPING_EVERY_SECONDS = 60.0
_last_housekeeping = -math.inf


def scheduler_tick(now: datetime | None = None) -> TickReport:
    """Create the due runs, enqueue runs that are stale or were never enqueued, and purge
    expired ingest idempotency keys.

    ``now`` is the database's clock (pipelines.clock), the one heartbeats, ``enqueued_at``
    and ``waiting_until`` are written with: a scheduler whose host clock is off neither
    revokes live leases nor leaves dead ones."""
    now = now or database_now()
    report = TickReport()
    while _schedule_due(now, report):
        pass
    _sweep_stale(now, report)
    _sweep_unenqueued(now, report)
    _sweep_waiting(now, report)
    # An indexed delete of ingest idempotency keys past their 24 hours (cheap when none).
    report.idempotency_keys_purged = idempotency_keys_purge(now=now)
    _housekeeping(now, report)
    return report


def _housekeeping(now: datetime, report: TickReport, *, force: bool = False) -> None:
    """Retention (docs/operations.md) and closing the "rejecting" incidents of calm sources."""
    global _last_housekeeping
    if not force and time.monotonic() - _last_housekeeping < HOUSEKEEPING_EVERY_SECONDS:
        return
    _last_housekeeping = time.monotonic()
    report.incidents_closed = rejecting_incidents_close(now=now)
    report.rows_purged = sum(retention_purge(now=now).deleted.values())


def _schedule_due(now: datetime, report: TickReport) -> bool:
    """Handle one batch of due pipelines; False when there was none."""
    with transaction.atomic():
        due = list(
            Pipeline.objects.select_for_update(skip_locked=True)
            .filter(enabled=True, next_run_at__lte=now)
            .exclude(schedule_cron="")
            .order_by("next_run_at")[:CLAIM_BATCH]
        )
        for pipeline in due:
            try:
                pipeline.next_run_at = cron.next_fire_time(
                    cron=pipeline.schedule_cron, timezone=pipeline.schedule_timezone, after=now
                )
            except (ValueError, KeyError):
                # A stored schedule that no longer parses (e.g. a time zone removed from the
                # tz database) must not block every other pipeline: unschedule it, loudly.
                logger.exception("pipeline %s has an unusable schedule", pipeline.pk)
                pipeline.next_run_at = None
                pipeline.save(update_fields=["next_run_at"])
                continue
            pipeline.save(update_fields=["next_run_at"])
            busy = Run.objects.filter(pipeline=pipeline, state__in=ACTIVE_RUN_STATES).exists()
            if busy:
                # The previous run is still going: this tick is skipped, not queued behind it.
                report.ticks_skipped += 1
                continue
            run_create(pipeline=pipeline, trigger=Trigger.SCHEDULE)
            report.runs_created += 1
    return bool(due)


def _sweep_stale(now: datetime, report: TickReport) -> None:
    """Enqueue again runs whose worker stopped beating (crash, kill, lost connection).

    The UPDATE revokes the old lease, so a worker that was only slow notices and stops, and
    sets the heartbeat to now, so the run is not enqueued again before another timeout.
    """
    stale = Q(heartbeat_at__lt=now - timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS))
    unfinished = Q(finished_at__isnull=True, state__in=[RunState.RUNNING, RunState.CANCELLED])
    candidates = Run.objects.filter(unfinished & (stale | Q(heartbeat_at__isnull=True)))
    for run_id in candidates.values_list("id", flat=True)[:SWEEP_BATCH]:
        claimed = Run.objects.filter(
            Q(pk=run_id) & unfinished & (stale | Q(heartbeat_at__isnull=True))
        ).update(lease_token=None, heartbeat_at=now, resumes=F("resumes") + 1)
        if claimed:
            logger.warning("run %s has no live worker; enqueueing it to resume", run_id)
            run_enqueue(run_id=run_id)
            report.runs_resumed += 1


def _sweep_unenqueued(now: datetime, report: TickReport) -> None:
    """Enqueue queued runs the broker never got, or that waited too long in it."""
    never = Q(
        enqueued_at__isnull=True,
        created_at__lt=now - timedelta(seconds=settings.RUN_ENQUEUE_GRACE_SECONDS),
    )
    lost = Q(enqueued_at__lt=now - timedelta(seconds=settings.RUN_REQUEUE_AFTER_SECONDS))
    queued = Run.objects.filter(Q(state=RunState.QUEUED) & (never | lost))
    for run_id, enqueued_at in queued.values_list("id", "enqueued_at")[:SWEEP_BATCH]:
        # Claim it (another scheduler may be sweeping too); run_enqueue stamps it again.
        claimed = Run.objects.filter(pk=run_id, enqueued_at=enqueued_at).update(enqueued_at=now)
        if claimed and run_enqueue(run_id=run_id):
            report.runs_enqueued += 1
        elif claimed:
            Run.objects.filter(pk=run_id, enqueued_at=now).update(enqueued_at=enqueued_at)


def _sweep_waiting(now: datetime, report: TickReport) -> None:
    """Enqueue waiting runs whose next attempt is due and whose delayed message did not
    come (lost with a killed worker or a broker restart): the database is the truth.

    A grace of settings.RUN_ENQUEUE_GRACE_SECONDS lets the message come first; the claim
    moves ``waiting_until`` to now, so a run still in a busy queue is enqueued again only
    after another grace.
    """
    grace = timedelta(seconds=settings.RUN_ENQUEUE_GRACE_SECONDS)
    due = Run.objects.filter(state=RunState.WAITING, waiting_until__lt=now - grace)
    for run_id, waiting_until in due.values_list("id", "waiting_until")[:SWEEP_BATCH]:
        claimed = Run.objects.filter(
            pk=run_id, state=RunState.WAITING, waiting_until=waiting_until
        ).update(waiting_until=now)
        if claimed:
            logger.info("run %s is due and was not resumed; enqueueing it", run_id)
            run_enqueue(run_id=run_id)
            report.runs_woken += 1


def scheduler_loop(*, stop: threading.Event) -> None:
    """Tick every settings.SCHEDULER_INTERVAL_SECONDS until ``stop`` is set."""
    logger.info("scheduler started (every %s s)", settings.SCHEDULER_INTERVAL_SECONDS)
    while not stop.is_set():
        try:
            report = scheduler_tick()
            if (
                report.runs_created
                or report.runs_resumed
                or report.runs_enqueued
                or report.runs_woken
            ):
                logger.info("scheduler tick: %s", report)
        except Exception:
            # A database restart or a bug in one tick must not stop scheduling for good: the
            # error is logged with its traceback and the next tick starts afresh.
            logger.exception("scheduler tick failed")
        finally:
            close_old_connections()
        stop.wait(settings.SCHEDULER_INTERVAL_SECONDS)
