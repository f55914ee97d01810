"""Sending a chunk: batch mode (JSON arrays, bisection) and single mode (bounded concurrency).

A sender turns a chunk into an ``Outcome`` (records delivered, and the failed ones with
their reasons); it writes only the request log. Confirming the outcome is the engine's job
(``pipelines.delivery``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from osmos.outbound.client import DeliveryError, OutboundSession
from pipelines.models import RequestLog, Run, RunChunk
from pipelines.records import (
    VALIDATION_GROUP,
    BatchBody,
    FailureSpool,
    Outcome,
    Preparer,
    chunk_texts,
)
from pipelines.retries import Aborted, Attempt, Target, failure_reason, send_with_retries

CANCELLED_REASON = "The run was cancelled before this record was sent."


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


class BatchSender:
    """Sends a chunk as JSON arrays: whole, or bisected after a permanent 4xx."""

    def __init__(
        self,
        *,
        run: Run,
        session: OutboundSession,
        target: Target,
        split: bool,
        prepare: Preparer,
        abort: threading.Event,
        recorder: RequestRecorder,
    ) -> None:
        self.run = run
        self.session = session
        self.target = target
        self.split = split
        self.prepare = prepare
        self.abort = abort
        self.recorder = recorder

    def deliver(self, chunk: RunChunk) -> Outcome:
        outcome = Outcome(failures=FailureSpool())
        body = BatchBody()
        try:
            # In a transaction, the server-side cursor streams rows while we map them; in
            # autocommit PostgreSQL would first materialize the whole chunk (WITH HOLD).
            with transaction.atomic():
                for sequence, raw in self.prepare(chunk_texts(self.run, chunk), outcome.failures):
                    body.add(sequence, raw)
            if len(body):
                self._send(chunk, body, 0, len(body), outcome)
        finally:
            body.close()
        return outcome

    def _send(self, chunk: RunChunk, body: BatchBody, start: int, stop: int, outcome: Outcome):
        first, last = body.sequences[start], body.sequences[stop - 1]
        whole = start == 0 and stop == len(body)
        key = chunk.idempotency_key if whole else f"{chunk.idempotency_key}:{first}-{last}"

        def log(attempt: Attempt) -> None:
            self.recorder.add(chunk, attempt)
            self.recorder.flush()

        try:
            error = send_with_retries(
                self.session,
                target=self.target,
                body=body.part(start, stop),
                idempotency_key=key,
                span=(first, last, stop - start),
                abort=self.abort,
                log=log,
            )
        except Aborted:
            self._fail(body, start, stop, outcome, reason=CANCELLED_REASON)
            return
        if error is None:
            outcome.delivered += stop - start
            return
        bisect = (
            self.split
            and stop - start > 1
            and not error.transient
            and error.status is not None
            and 400 <= error.status < 500
        )
        if bisect:
            middle = (start + stop) // 2
            self._send(chunk, body, start, middle, outcome)
            self._send(chunk, body, middle, stop, outcome)
            return
        reason = failure_reason(error, attempts=settings.DELIVERY_MAX_ATTEMPTS)
        self._fail(body, start, stop, outcome, reason, error.status, error.response_excerpt)

    @staticmethod
    def _fail(
        body: BatchBody,
        start: int,
        stop: int,
        outcome: Outcome,
        reason: str,
        status: int | None = None,
        excerpt: str = "",
    ) -> None:
        for index in range(start, stop):
            outcome.failures.add(
                sequence=body.sequences[index],
                record=body.record(index),
                reason=reason,
                status=status,
                excerpt=excerpt,
            )


# --- single mode --------------------------------------------------------------------------------


class SingleSender:
    """Sends a chunk one record per request, DELIVERY_SINGLE_CONCURRENCY at a time.

    The pool threads only make HTTP requests; every database write stays in the run's
    thread (so the pool holds no database connection).
    """

    def __init__(
        self,
        *,
        run: Run,
        session: OutboundSession,
        target: Target,
        prepare: Preparer,
        abort: threading.Event,
        recorder: RequestRecorder,
        pool: ThreadPoolExecutor,
        concurrency: int,
    ) -> None:
        self.run = run
        self.session = session
        self.target = target
        self.prepare = prepare
        self.abort = abort
        self.recorder = recorder
        self.pool = pool
        self.concurrency = concurrency

    def deliver(self, chunk: RunChunk) -> Outcome:
        outcome = Outcome(failures=FailureSpool())
        records = self.prepare(chunk_texts(self.run, chunk), outcome.failures)
        # In groups, so that memory stays bounded even for a chunk planned in batch mode
        # (the destination's write mode changed during the run).
        while group := list(itertools.islice(records, VALIDATION_GROUP)):
            self._send_group(chunk, group, outcome)
        self.recorder.flush()
        return outcome

    def _send_group(self, chunk: RunChunk, group: list[tuple[int, bytes]], outcome: Outcome):
        key = chunk.idempotency_key
        results = self._send_all(key, group)
        for (sequence, raw), (result, attempts) in zip(group, results, strict=True):
            for attempt in attempts:
                self.recorder.add(chunk, attempt)
            if result is None:
                outcome.delivered += 1
                continue
            if isinstance(result, DeliveryError):
                reason = failure_reason(result, attempts=settings.DELIVERY_MAX_ATTEMPTS)
                status, excerpt = result.status, result.response_excerpt
            else:
                reason, status, excerpt = CANCELLED_REASON, None, ""
            outcome.failures.add(
                sequence=sequence, record=raw, reason=reason, status=status, excerpt=excerpt
            )

    def _send_all(
        self, key: str, group: list[tuple[int, bytes]]
    ) -> list[tuple[DeliveryError | Aborted | None, list[Attempt]]]:
        """Each record's result, in order: ``concurrency`` pool threads take the next record
        as they become free (one task per thread, not per record: a Future per request cost
        more CPU than the request's own bookkeeping)."""
        results: list[tuple[DeliveryError | Aborted | None, list[Attempt]]] = [(None, [])] * len(
            group
        )
        items = enumerate(group)
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    item = next(items, None)
                if item is None:
                    return
                index, (sequence, raw) = item
                results[index] = self._send_one(key, sequence, raw)

        tasks = [self.pool.submit(work) for _ in range(min(self.concurrency, len(group)))]
        for task in tasks:
            task.result()
        return results

    def _send_one(
        self, key: str, sequence: int, raw: bytes
    ) -> tuple[DeliveryError | Aborted | None, list[Attempt]]:
        attempts: list[Attempt] = []
        try:
            error = send_with_retries(
                self.session,
                target=self.target,
                body=raw,
                idempotency_key=f"{key}:{sequence}",
                span=(sequence, sequence, 1),
                abort=self.abort,
                log=attempts.append,
            )
        except Aborted as exc:
            return exc, attempts
        return error, attempts
