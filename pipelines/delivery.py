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
   against the destination schema (invalid records fail, unsent), and sent. Batch mode
   serializes the chunk into a spooled temporary file and sends it as one JSON array,
   bisecting on a permanent 4xx when ``split_failed_batches`` is on; single mode sends one
   object per request over one keep-alive session with bounded concurrency.
4. **Confirm** the chunk in one transaction, under the run's row lock and only while the
   lease is still ours: its failure rows, its ``done`` state and the run's counters. So a
   confirmed chunk is never sent again, and an unconfirmed one is sent again after a crash
   with the same idempotency keys.
5. **Finish**: the state follows from the counters; a cancelled run first records its
   unsent records as failed. ``records_delivered + records_failed == records_total``.

A worker stops taking new chunks after settings.DELIVERY_RUN_SLICE_SECONDS, releases the
lease and enqueues the run again, so one long run does not hold a worker thread for hours.
"""

from __future__ import annotations

import io
import itertools
import logging
import random
import tempfile
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any

import msgspec
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from connectors.models import DestinationSettings, WriteMode
from connectors.schema import CompiledSchema, compile_schema
from ingest.models import Record
from pipelines.http import DeliveryError, OutboundSession
from pipelines.mapping import map_record
from pipelines.models import (
    EXCERPT_MAX_CHARS,
    ChunkState,
    RecordFailure,
    RequestLog,
    Run,
    RunChunk,
    RunState,
)

logger = logging.getLogger(__name__)

CANCELLED_REASON = "The run was cancelled before this record was sent."
GAVE_UP_REASON = (
    "Not sent: the run was interrupted {resumes} times (its worker stopped each time) and "
    "gave up; retry the failed records once the cause is fixed."
)
# Records mapped and validated together (one validator call); bounds memory per step.
VALIDATION_GROUP = 1000
DB_FETCH_SIZE = 2000
FAILURE_INSERT_BATCH = 1000

_encode = msgspec.json.encode


# --- leases and heartbeats ----------------------------------------------------------------------


def _stale_before() -> Any:
    return timezone.now() - timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS)


def _acquire(run_id: uuid.UUID) -> uuid.UUID | None:
    """Take the run's lease; None when it is finished, gone, or held by a live worker."""
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.finished_at is not None:
            return None
        live = run.heartbeat_at is not None and run.heartbeat_at > _stale_before()
        if run.lease_token is not None and live:
            return None
        now = timezone.now()
        run.lease_token = uuid.uuid4()
        run.heartbeat_at = now
        run.attempts += 1
        if run.state == RunState.QUEUED:
            run.state = RunState.RUNNING
        run.started_at = run.started_at or now
        run.save(update_fields=["lease_token", "heartbeat_at", "attempts", "state", "started_at"])
        return run.lease_token


def _locked_if_ours(run_id: uuid.UUID, token: uuid.UUID) -> Run | None:
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
                heartbeat_at=timezone.now()
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


# --- retries ------------------------------------------------------------------------------------


def retry_delay(
    *,
    attempt: int,
    retry_after: float | None,
    base: float,
    maximum: float,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    Exponential backoff ``base * 2**(attempt-1)`` capped at ``maximum``, with "equal jitter"
    (a random value in [delay/2, delay]) so that many runs failing together do not retry in
    step; never sooner than ``retry_after`` (already capped by the HTTP module).
    """
    delay = min(maximum, base * 2 ** (attempt - 1))
    delay = delay / 2 + delay / 2 * rng()
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP request, as written to the request log."""

    sequence_from: int
    sequence_to: int
    record_count: int
    attempt: int
    status: int | None
    duration_ms: int
    error: str


class Aborted(Exception):
    """The run was cancelled or its lease lost while a request was waiting to be retried."""


@dataclass(slots=True)
class Target:
    """Where and how a run's requests go (header values are secrets: never logged)."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    timeout: float

    @classmethod
    def of(cls, destination: DestinationSettings) -> Target:
        return cls(
            method=destination.method,
            url=destination.url,
            headers=destination.decrypted_headers(),
            timeout=float(destination.timeout_seconds),
        )


def send_with_retries(
    session: OutboundSession,
    *,
    target: Target,
    body: bytes | IO[bytes],
    idempotency_key: str,
    span: tuple[int, int, int],
    abort: threading.Event,
    log: Callable[[Attempt], None],
) -> DeliveryError | None:
    """Send one request, retrying transient failures; None on success, else the last error.

    ``span`` is (first sequence, last sequence, record count) for the request log. Raises
    Aborted when ``abort`` is set before an attempt or during a wait.
    """
    max_attempts = settings.DELIVERY_MAX_ATTEMPTS
    for attempt in range(1, max_attempts + 1):
        if abort.is_set():
            raise Aborted()
        started = time.monotonic()
        try:
            response = session.send(
                target.method,
                target.url,
                headers=target.headers,
                body=body,
                idempotency_key=idempotency_key,
                timeout=target.timeout,
            )
        except DeliveryError as exc:
            log(Attempt(*span, attempt, exc.status, _ms_since(started), exc.message))
            if not exc.transient or attempt == max_attempts:
                return exc
            delay = retry_delay(
                attempt=attempt,
                retry_after=exc.retry_after,
                base=settings.DELIVERY_BACKOFF_BASE_SECONDS,
                maximum=settings.DELIVERY_BACKOFF_MAX_SECONDS,
            )
            if abort.wait(delay):
                raise Aborted() from None
            continue
        log(Attempt(*span, attempt, response.status, _ms_since(started), ""))
        return None
    raise AssertionError("unreachable")  # pragma: no cover


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def failure_reason(error: DeliveryError, *, attempts: int) -> str:
    if error.transient:
        return f"{error.message} Gave up after {attempts} attempts."
    return error.message


# --- chunk outcomes -----------------------------------------------------------------------------


_FAILURE_LINE = msgspec.json.Decoder(tuple[int, msgspec.Raw, str, int | None, str])


class FailureSpool:
    """The failed records of one chunk, kept in a spooled file rather than in a list.

    A chunk can hold 250,000 records that all fail; each failure is one JSON line here, and
    ``rows`` reads them back in insert batches when the chunk is confirmed.
    """

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            max_size=settings.DELIVERY_SPOOL_MEMORY_BYTES
        )
        self.count = 0

    def add(
        self, *, sequence: int, record: bytes, reason: str, status: int | None, excerpt: str
    ) -> None:
        line = _encode([sequence, msgspec.Raw(record), reason, status, excerpt[:EXCERPT_MAX_CHARS]])
        self._file.write(line + b"\n")
        self.count += 1

    def rows(self) -> Iterator[tuple[int, Any, str, int | None, str]]:
        self._file.seek(0)
        for line in self._file:
            sequence, raw, reason, status, excerpt = _FAILURE_LINE.decode(line)
            yield sequence, msgspec.json.decode(raw), reason, status, excerpt

    def close(self) -> None:
        self._file.close()


@dataclass(slots=True)
class Outcome:
    """What happened to each record of a chunk: ``delivered`` + ``failures.count`` of them."""

    failures: FailureSpool
    delivered: int = 0
    attempts: list[Attempt] = field(default_factory=list)


def _confirm(
    *, run_id: uuid.UUID, token: uuid.UUID, chunk: RunChunk, outcome: Outcome
) -> Run | None:
    """Record the chunk's outcome atomically and return the run as locked (its state tells
    whether it was cancelled meanwhile); None, with nothing written, when the lease is lost.
    """
    with transaction.atomic():
        run = _locked_if_ours(run_id, token)
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
        if outcome.delivered + failed != chunk.record_count:
            # The records of a range never change, so this is a bug: say so loudly.
            logger.error(
                "chunk %s of run %s: %s delivered + %s failed != %s records",
                chunk.index,
                run_id,
                outcome.delivered,
                failed,
                chunk.record_count,
            )
        RunChunk.objects.filter(pk=chunk.pk).update(
            state=ChunkState.DONE,
            delivered=outcome.delivered,
            failed=failed,
            finished_at=timezone.now(),
        )
        Run.objects.filter(pk=run_id).update(
            records_delivered=F("records_delivered") + outcome.delivered,
            records_failed=F("records_failed") + failed,
            heartbeat_at=timezone.now(),
        )
    return run


class RequestRecorder:
    """Writes request-log rows and counts ``requests_made`` (from the run's own thread)."""

    def __init__(self, *, run: Run) -> None:
        self._run = run
        self._pending: list[RequestLog] = []

    def add(self, chunk: RunChunk, attempt: Attempt) -> None:
        self._pending.append(
            RequestLog(
                organization_id=self._run.organization_id,
                run_id=self._run.id,
                chunk=chunk,
                sequence_from=attempt.sequence_from,
                sequence_to=attempt.sequence_to,
                record_count=attempt.record_count,
                attempt=attempt.attempt,
                status=attempt.status,
                duration_ms=attempt.duration_ms,
                error=attempt.error,
            )
        )

    def flush(self) -> None:
        if not self._pending:
            return
        with transaction.atomic():
            RequestLog.objects.bulk_create(self._pending)
            Run.objects.filter(pk=self._run.id).update(
                requests_made=F("requests_made") + len(self._pending)
            )
        self._pending = []


# --- records of a run ---------------------------------------------------------------------------


def run_selection(run: Run) -> QuerySet[Record]:
    """The source records a run covers (a retry run: its parent's failed records)."""
    records = Record.objects.filter(
        organization_id=run.organization_id,
        connector_id=run.pipeline.source_id,
        sequence__gt=run.sequence_from,
        sequence__lte=run.sequence_to,
    )
    if run.parent_id:
        failed = RecordFailure.objects.filter(run_id=run.parent_id).values("sequence")
        records = records.filter(sequence__in=failed)
    return records


def _chunk_rows(run: Run, chunk: RunChunk) -> Iterator[tuple[int, Any]]:
    return (
        run_selection(run)
        .filter(sequence__gt=chunk.sequence_from, sequence__lte=chunk.sequence_to)
        .order_by("sequence")
        .values_list("sequence", "data")
        .iterator(chunk_size=DB_FETCH_SIZE)
    )


def prepared_records(
    rows: Iterator[tuple[int, Any]],
    *,
    mapping: tuple[tuple[str, str], ...],
    schema: CompiledSchema,
    failures: FailureSpool,
) -> Iterator[tuple[int, bytes]]:
    """``(sequence, JSON bytes)`` of each mapped record valid for the destination.

    A record that breaks the destination schema goes to ``failures`` with the validator's
    messages and is not yielded (so it is never sent).
    """
    group: list[tuple[int, bytes]] = []
    for sequence, data in rows:
        group.append((sequence, _encode(map_record(data, mapping))))
        if len(group) >= VALIDATION_GROUP:
            yield from _valid_in(group, schema=schema, failures=failures)
            group = []
    yield from _valid_in(group, schema=schema, failures=failures)


def _valid_in(
    group: list[tuple[int, bytes]], *, schema: CompiledSchema, failures: FailureSpool
) -> Iterator[tuple[int, bytes]]:
    if not group:
        return
    body = b"[" + b",".join(raw for _, raw in group) + b"]"
    result = schema.validate_body(body, kind="array", max_errors=None)
    problems: dict[int, list[str]] = {}
    for error in result.errors:
        problems.setdefault(error.index, []).append(error.message)
    for index, (sequence, raw) in enumerate(group):
        if index in problems:
            reason = "Does not match the destination schema: " + "; ".join(problems[index])
            failures.add(sequence=sequence, record=raw, reason=reason, status=None, excerpt="")
        else:
            yield sequence, raw


# --- batch mode ---------------------------------------------------------------------------------


class BatchBody:
    """A JSON array of records written to a spooled temporary file, addressable by record.

    Records ``i..j-1`` are sent as ``[`` + the bytes from the start of record i to the end of
    record j-1 (commas included) + ``]``, so every half of a bisection reads the same file.
    """

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            max_size=settings.DELIVERY_SPOOL_MEMORY_BYTES
        )
        self._file.write(b"[")
        self._position = 1
        self._starts = array("Q")
        self._ends = array("Q")
        self.sequences = array("Q")

    def __len__(self) -> int:
        return len(self.sequences)

    def add(self, sequence: int, raw: bytes) -> None:
        if self.sequences:
            self._file.write(b",")
            self._position += 1
        self._starts.append(self._position)
        self._file.write(raw)
        self._position += len(raw)
        self._ends.append(self._position)
        self.sequences.append(sequence)

    def part(self, start: int, stop: int) -> BodySlice:
        return BodySlice(self._file, self._starts[start], self._ends[stop - 1])

    def record(self, index: int) -> bytes:
        self._file.seek(self._starts[index])
        return self._file.read(self._ends[index] - self._starts[index])

    def close(self) -> None:
        self._file.close()


class BodySlice(io.RawIOBase):
    """A read-only file: ``[`` + bytes [start, end) of ``source`` + ``]``."""

    def __init__(self, source: IO[bytes], start: int, end: int) -> None:
        super().__init__()
        self._source = source
        self._start = start
        self._length = end - start + 2
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = min(max(base + offset, 0), self._length)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        remaining = self._length - self._position
        if size is None or size < 0 or size > remaining:
            size = remaining
        if size == 0:
            return b""
        out = bytearray()
        if self._position == 0:
            out += b"["
            self._position = 1
            size -= 1
        inner = min(size, self._length - 1 - self._position)
        if inner > 0:
            self._source.seek(self._start + self._position - 1)
            data = self._source.read(inner)
            out += data
            self._position += len(data)
            size -= len(data)
        if size > 0 and self._position == self._length - 1:
            out += b"]"
            self._position += 1
        return bytes(out)


class BatchSender:
    """Sends a chunk as JSON arrays: whole, or bisected after a permanent 4xx."""

    def __init__(
        self,
        *,
        run: Run,
        session: OutboundSession,
        target: Target,
        split: bool,
        schema: CompiledSchema,
        abort: threading.Event,
        recorder: RequestRecorder,
    ) -> None:
        self.run = run
        self.session = session
        self.target = target
        self.split = split
        self.schema = schema
        self.abort = abort
        self.recorder = recorder
        self.mapping = tuple(run.mapping.items())

    def deliver(self, chunk: RunChunk) -> Outcome:
        outcome = Outcome(failures=FailureSpool())
        body = BatchBody()
        try:
            records = prepared_records(
                _chunk_rows(self.run, chunk),
                mapping=self.mapping,
                schema=self.schema,
                failures=outcome.failures,
            )
            for sequence, raw in records:
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
        schema: CompiledSchema,
        abort: threading.Event,
        recorder: RequestRecorder,
        pool: ThreadPoolExecutor,
    ) -> None:
        self.run = run
        self.session = session
        self.target = target
        self.schema = schema
        self.abort = abort
        self.recorder = recorder
        self.pool = pool
        self.mapping = tuple(run.mapping.items())

    def deliver(self, chunk: RunChunk) -> Outcome:
        outcome = Outcome(failures=FailureSpool())
        records = prepared_records(
            _chunk_rows(self.run, chunk),
            mapping=self.mapping,
            schema=self.schema,
            failures=outcome.failures,
        )
        # In groups, so that memory stays bounded even for a chunk planned in batch mode
        # (the destination's write mode changed during the run).
        while group := list(itertools.islice(records, VALIDATION_GROUP)):
            self._send_group(chunk, group, outcome)
        self.recorder.flush()
        return outcome

    def _send_group(self, chunk: RunChunk, group: list[tuple[int, bytes]], outcome: Outcome):
        key = chunk.idempotency_key
        results = self.pool.map(lambda item: self._send_one(key, *item), group)
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


# --- the run ------------------------------------------------------------------------------------


def chunk_idempotency_key(run_id: uuid.UUID, sequence_from: int, sequence_to: int) -> str:
    return f"osmos-{run_id}-{sequence_from}-{sequence_to}"


def _plan(run: Run, token: uuid.UUID) -> None:
    """Cut the run into chunks and count its records (once; a no-op when already planned)."""
    destination = run.pipeline.destination.destination
    if destination.write_mode == WriteMode.BATCH:
        size = destination.batch_size
    else:
        size = settings.DELIVERY_SINGLE_CHUNK_RECORDS
    chunks: list[RunChunk] = []
    total = 0
    lower = run.sequence_from
    count = 0
    sequences = (
        run_selection(run)
        .order_by("sequence")
        .values_list("sequence", flat=True)
        .iterator(chunk_size=10_000)
    )
    for sequence in sequences:
        total += 1
        count += 1
        if count == size:
            chunks.append(_chunk(run, len(chunks), lower, sequence, count))
            lower, count = sequence, 0
    if count:
        chunks.append(_chunk(run, len(chunks), lower, run.sequence_to, count))
    with transaction.atomic():
        locked = _locked_if_ours(run.id, token)
        if locked is None or locked.planned_at is not None:
            return
        RunChunk.objects.bulk_create(chunks, batch_size=1000)
        Run.objects.filter(pk=run.id).update(records_total=total, planned_at=timezone.now())


def _chunk(run: Run, index: int, lower: int, upper: int, count: int) -> RunChunk:
    return RunChunk(
        organization_id=run.organization_id,
        run=run,
        index=index,
        sequence_from=lower,
        sequence_to=upper,
        record_count=count,
        idempotency_key=chunk_idempotency_key(run.id, lower, upper),
    )


def _pending_chunks(run_id: uuid.UUID) -> list[RunChunk]:
    return list(RunChunk.objects.filter(run_id=run_id, state=ChunkState.PENDING).order_by("index"))


def _unsent_outcome(run: Run, chunk: RunChunk, reason: str) -> Outcome:
    """Every record of a chunk that will not be sent, failed with ``reason``."""
    outcome = Outcome(failures=FailureSpool())
    mapping = tuple(run.mapping.items())
    for sequence, data in _chunk_rows(run, chunk):
        outcome.failures.add(
            sequence=sequence,
            record=_encode(map_record(data, mapping)),
            reason=reason,
            status=None,
            excerpt="",
        )
    return outcome


def _finish(run_id: uuid.UUID, token: uuid.UUID) -> None:
    """Account for the unsent records of a cancelled (or given up) run, then close the run."""
    run = Run.objects.select_related("pipeline").get(pk=run_id)
    unsent_reason = None
    if run.state == RunState.CANCELLED:
        unsent_reason = CANCELLED_REASON
    elif run.resumes > settings.RUN_MAX_RESUMES:
        unsent_reason = GAVE_UP_REASON.format(resumes=run.resumes)
    if unsent_reason is not None:
        for chunk in _pending_chunks(run_id):
            outcome = _unsent_outcome(run, chunk, unsent_reason)
            try:
                confirmed = _confirm(run_id=run_id, token=token, chunk=chunk, outcome=outcome)
            finally:
                outcome.failures.close()
            if confirmed is None:
                return
    with transaction.atomic():
        run = _locked_if_ours(run_id, token)
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
        run.save(update_fields=["state", "finished_at", "lease_token"])


def final_state(*, delivered: int, failed: int) -> str:
    if failed == 0:
        return RunState.SUCCEEDED
    if delivered == 0:
        return RunState.FAILED
    return RunState.PARTIALLY_FAILED


def _release(run_id: uuid.UUID, token: uuid.UUID) -> None:
    """Give the lease back and enqueue the run again (its time slice is over)."""
    from pipelines.services import run_enqueue  # services imports tasks imports this module

    with transaction.atomic():
        if Run.objects.filter(pk=run_id, lease_token=token).update(lease_token=None):
            transaction.on_commit(lambda: run_enqueue(run_id=run_id))


def run_execute(*, run_id: uuid.UUID) -> None:
    """Execute (or resume, or settle a cancelled) run; safe to call any number of times.

    Returns at once when the run is finished or another worker holds it.
    """
    token = _acquire(run_id)
    if token is None:
        return
    with Heartbeat(run_id=run_id, token=token) as heartbeat:
        run = Run.objects.select_related(
            "pipeline__destination__destination", "pipeline__source"
        ).get(pk=run_id)
        if run.planned_at is None:
            _plan(run, token)
        gave_up = run.resumes > settings.RUN_MAX_RESUMES
        if gave_up:
            logger.error("run %s was resumed %s times; giving up", run_id, run.resumes)
        elif run.state != RunState.CANCELLED and not _deliver_pending(run, token, heartbeat):
            return
        if heartbeat.lost:
            return
        _finish(run_id, token)


def _deliver_pending(run: Run, token: uuid.UUID, heartbeat: Heartbeat) -> bool:
    """Send and confirm pending chunks; False when the run must stop here (lease or time)."""
    destination = run.pipeline.destination
    settings_row = destination.destination
    schema = compile_schema(fields=destination.field_specs())
    target = Target.of(settings_row)
    recorder = RequestRecorder(run=run)
    deadline = time.monotonic() + settings.DELIVERY_RUN_SLICE_SECONDS
    with (
        OutboundSession(pool_size=settings.DELIVERY_SINGLE_CONCURRENCY) as session,
        ThreadPoolExecutor(max_workers=settings.DELIVERY_SINGLE_CONCURRENCY) as pool,
    ):
        if settings_row.write_mode == WriteMode.BATCH:
            sender: BatchSender | SingleSender = BatchSender(
                run=run,
                session=session,
                target=target,
                split=settings_row.split_failed_batches,
                schema=schema,
                abort=heartbeat.abort,
                recorder=recorder,
            )
        else:
            sender = SingleSender(
                run=run,
                session=session,
                target=target,
                schema=schema,
                abort=heartbeat.abort,
                recorder=recorder,
                pool=pool,
            )
        for position, chunk in enumerate(_pending_chunks(run.id)):
            if heartbeat.abort.is_set():
                break
            # At least one chunk per slice, so that every message makes progress.
            if position and time.monotonic() > deadline:
                _release(run.id, token)
                return False
            outcome = sender.deliver(chunk)
            try:
                confirmed = _confirm(run_id=run.id, token=token, chunk=chunk, outcome=outcome)
            finally:
                outcome.failures.close()
            if confirmed is None:
                return False
            if confirmed.state == RunState.CANCELLED:
                # Seen under the row lock: stop now rather than at the next heartbeat.
                heartbeat.cancelled = True
                heartbeat.abort.set()
    return True
