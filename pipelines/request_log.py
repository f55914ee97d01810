"""The request log of runs: writing one row per HTTP request (``RequestRecorder``)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from osmos.observability import metrics
from pipelines.models import RequestLog, Run, RunChunk
from pipelines.retries import Attempt


class RequestRecorder:
    """Writes request-log rows and counts ``requests_made`` (from the run's own thread)."""

    _COLUMNS = (
        "organization_id",
        "run_id",
        "chunk_id",
        "sequence_from",
        "sequence_to",
        "record_count",
        "attempt",
        "status",
        "duration_ms",
        "error",
        "created_at",
    )

    def __init__(self, *, run: Run) -> None:
        self._run = run
        self._pending: list[tuple[int, Attempt]] = []

    def add(self, chunk: RunChunk, attempt: Attempt) -> None:
        self._pending.append((chunk.pk, attempt))
        metrics.DELIVERY_REQUESTS.labels(status_class=metrics.status_class(attempt.status)).inc()
        metrics.DELIVERY_REQUEST_SECONDS.observe(attempt.duration_ms / 1000)

    def flush(self) -> None:
        if not self._pending:
            return
        with transaction.atomic():
            if connection.vendor == "postgresql":
                self._copy()
            else:
                RequestLog.objects.bulk_create(self._objects())
            Run.objects.filter(pk=self._run.id).update(
                requests_made=F("requests_made") + len(self._pending)
            )
        self._pending = []

    def _rows(self) -> Iterator[tuple[object, ...]]:
        organization_id, run_id, now = self._run.organization_id, self._run.id, timezone.now()
        for chunk_id, a in self._pending:
            yield (
                organization_id,
                run_id,
                chunk_id,
                a.sequence_from,
                a.sequence_to,
                a.record_count,
                a.attempt,
                a.status,
                a.duration_ms,
                a.error,
                now,
            )

    def _objects(self) -> list[RequestLog]:
        return [RequestLog(**dict(zip(self._COLUMNS, row, strict=True))) for row in self._rows()]

    def _copy(self) -> None:
        # Single mode logs one row per record: COPY costs a fraction of bulk_create's CPU,
        # which competes with the sending threads for the GIL.
        columns = ", ".join(self._COLUMNS)
        sql = f"COPY {RequestLog._meta.db_table} ({columns}) FROM STDIN"
        with connection.cursor() as cursor, cursor.copy(sql) as copy:
            for row in self._rows():
                copy.write_row(row)
