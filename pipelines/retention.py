"""Retention (SPEC §5.6): what is older than settings.RETENTION_DAYS goes, in small batches.

Purged:
- **records** that every pipeline of their source has passed: a pipeline has passed the
  records up to its cursor (incremental) or up to the end of its last finished run (full),
  and never those of a run that is not finished yet. A source without pipelines keeps its
  records (nothing has passed them; a pipeline made later starts from the beginning), and
  every source keeps its first settings.INGEST_SAMPLES_REQUIRED records (the samples the
  mapping pages show) and any record a retained failure may be retried from;
- **request logs (and their runs' request templates) and failures** of runs that finished
  before the cut-off;
- **notifications** and **rejected ingest requests** created before the cut-off.

Why batches: one ``DELETE`` of a million rows holds its row locks and its transaction for
seconds to minutes and writes one huge WAL burst; batches of settings.RETENTION_BATCH_ROWS
rows, each its own short transaction found by an index (records by ``(connector, sequence)``,
logs and failures by their run), keep every lock short. Ingest never waits for it: it
inserts new rows and locks its connector row, neither of which a purge touches. The
scheduler calls ``retention_purge`` on every tick with a time budget, so a large backlog is
worked off over several ticks instead of in one long one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from connectors.models import Connector
from ingest.models import IngestRejection, Record
from osmos import idempotency
from osmos.notifications.models import Notification
from pipelines.models import (
    FINISHED_RUN_STATES,
    Pipeline,
    RecordFailure,
    RequestLog,
    RequestTemplate,
    Run,
    SyncMode,
)


@dataclass
class PurgeReport:
    deleted: dict[str, int] = field(default_factory=dict)
    complete: bool = True  # False when the time budget ran out with work left
    # The longest batch transaction: how long any row lock of the purge was held.
    longest_batch_seconds: float = 0.0

    def add(self, kind: str, count: int) -> None:
        self.deleted[kind] = self.deleted.get(kind, 0) + count


def retention_purge(
    *, now: datetime | None = None, budget_seconds: float | None = None
) -> PurgeReport:
    """Delete what retention allows, batch by batch, for at most ``budget_seconds``."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.RETENTION_DAYS)
    budget = settings.RETENTION_TICK_SECONDS if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    report = PurgeReport()
    steps = [
        ("notifications", _purge_notifications(cutoff)),
        ("rejections", _batches(IngestRejection.objects.filter(created_at__lt=cutoff), "pk")),
        ("request_logs", _purge_by_old_runs(RequestLog, cutoff)),
        ("request_templates", _purge_by_old_runs(RequestTemplate, cutoff)),
        ("failures", _purge_by_old_runs(RecordFailure, cutoff)),
        # The API's Idempotency-Keys past their 24 hours (osmos/idempotency.py).
        ("api_idempotency_keys", _batches(idempotency.expired_keys(now), "pk")),
    ]
    steps += [
        ("records", _purge_records(source_id, cutoff)) for source_id in _sources_with_pipelines()
    ]
    for kind, batches in steps:
        while True:
            if time.monotonic() > deadline:
                report.complete = False
                return report
            started = time.monotonic()
            deleted = next(batches, 0)
            report.longest_batch_seconds = max(
                report.longest_batch_seconds, time.monotonic() - started
            )
            report.add(kind, deleted)
            if deleted < settings.RETENTION_BATCH_ROWS:
                break
    return report


def _delete_batch(queryset) -> tuple[int, object]:
    """Delete the first batch of ``queryset``'s rows in its own transaction: ``(count, the
    last row's ordering key)``, so the next batch starts after it. Starting over from the
    top each time would walk the index entries of every row deleted so far (they stay until
    VACUUM): measured, batches grew from 60 ms to 780 ms over 200,000 records that way."""
    key = queryset.query.order_by[0]
    with transaction.atomic():
        rows = list(queryset.values_list("pk", key)[: settings.RETENTION_BATCH_ROWS])
        if not rows:
            return 0, None
        deleted, _ = queryset.model._base_manager.filter(pk__in=[r[0] for r in rows]).delete()
        return deleted, rows[-1][1]


def _batches(queryset, key: str) -> Iterator[int]:
    """Delete ``queryset`` (ordered by the unique ``key``) batch by batch, keyset-paginated."""
    last = None
    while True:
        page = queryset if last is None else queryset.filter(**{f"{key}__gt": last})
        deleted, last = _delete_batch(page.order_by(key))
        yield deleted
        if last is None:
            return


def _purge_notifications(cutoff: datetime) -> Iterator[int]:
    return _batches(Notification.objects.filter(created_at__lt=cutoff), "pk")


def _purge_by_old_runs(model, cutoff: datetime) -> Iterator[int]:
    old_runs = Run.objects.filter(finished_at__lt=cutoff).values("pk")
    return _batches(model.objects.filter(run_id__in=old_runs), "pk")


def _sources_with_pipelines() -> list:
    """Sources that have a pipeline (the others keep everything)."""
    return list(
        Connector.objects.filter(direction="source", pipelines_as_source__isnull=False)
        .distinct()
        .values_list("pk", flat=True)
    )


def passed_sequence(source_id) -> int:
    """The highest sequence every pipeline of the source has passed (0: none)."""
    passed: list[int] = []
    for pipeline in Pipeline.objects.filter(source_id=source_id):
        runs = Run.objects.filter(pipeline=pipeline)
        if pipeline.sync_mode == SyncMode.INCREMENTAL:
            upto = pipeline.cursor
        else:
            finished = runs.filter(state__in=FINISHED_RUN_STATES)
            upto = finished.aggregate(m=Max("sequence_to"))["m"] or 0
        unfinished = runs.exclude(state__in=FINISHED_RUN_STATES)
        first_unfinished = unfinished.aggregate(m=Min("sequence_from"))["m"]
        if first_unfinished is not None:
            upto = min(upto, first_unfinished)
        passed.append(upto)
    return min(passed, default=0)


def _purge_records(source_id, cutoff: datetime) -> Iterator[int]:
    upto = passed_sequence(source_id)
    if upto <= settings.INGEST_SAMPLES_REQUIRED:
        return iter(())
    retained_failures = RecordFailure.objects.filter(run__pipeline__source_id=source_id).values(
        "sequence"
    )
    records = Record.objects.filter(
        connector_id=source_id,
        sequence__gt=settings.INGEST_SAMPLES_REQUIRED,
        sequence__lte=upto,
        received_at__lt=cutoff,
    ).exclude(sequence__in=retained_failures)
    return _batches(records, "sequence")
