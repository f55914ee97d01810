"""Single mode through a thread pool and urllib3 (``OutboundSession``): the engine's first
single-mode sender, kept as the default while the libcurl sender (``pipelines.single``) is
finished: on PostgreSQL a run through a flapping destination stalled with it (see
docs/benchmarks.md). ``settings.DELIVERY_SINGLE_CLIENT = "curl"`` selects the libcurl one.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection

from osmos.outbound.client import DeliveryError, OutboundSession, Response
from osmos.outbound.gate import DestinationGate
from osmos.outbound.shaping import ShapingError
from pipelines.models import Run, RunChunk
from pipelines.records import (
    VALIDATION_GROUP,
    FailureBuffer,
    FailureSpool,
    Outcome,
    Preparer,
    Step,
    chunk_texts,
)
from pipelines.results import rejected_records
from pipelines.retries import Aborted, Attempt, Target, must_wait, send_request, too_large_hint
from pipelines.senders import CANCELLED_REASON, RequestRecorder

_NOT_SENT = object()  # a record left unsent because an earlier one made the chunk wait


class ThreadedSingleSender:
    """Sends a chunk one record per request, ``concurrency`` at a time, in steps of about
    settings.DELIVERY_PROGRESS_SECONDS (each confirmed by the engine, so a crash re-sends at
    most one step's records).

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
        gate: DestinationGate,
    ) -> None:
        self.gate = gate
        self.run = run
        self.session = session
        self.target = target
        self.prepare = prepare
        self.abort = abort
        self.recorder = recorder
        self.pool = pool
        self.concurrency = concurrency
        # Records per step, adapted to the measured rate (starts small: a slow destination).
        self._step_size = concurrency

    def deliver(self, chunk: RunChunk) -> Iterator[Step]:
        pending = FailureBuffer()
        records = self.prepare(chunk_texts(self.run, chunk), pending)  # type: ignore[arg-type]
        while group := list(itertools.islice(records, self._step_size)):
            started = time.monotonic()
            step = self._send_group(chunk, group, pending)
            self.recorder.flush()
            self._adapt(len(group), time.monotonic() - started)
            yield step
            if step.wait is not None:
                return
        outcome = Outcome(failures=FailureSpool())
        pending.move_to(outcome.failures, through=None)
        yield Step(outcome=outcome, done=True)

    def _adapt(self, sent: int, seconds: float) -> None:
        target = settings.DELIVERY_PROGRESS_SECONDS
        rate = sent / max(seconds, 0.001)
        size = int(rate * target)
        self._step_size = max(self.concurrency, min(VALIDATION_GROUP, size))

    def _send_group(
        self, chunk: RunChunk, group: list[tuple[int, bytes]], pending: FailureBuffer
    ) -> Step:
        outcome = Outcome(failures=FailureSpool())
        results = self._send_all(chunk, group)
        # Sending stops at the first failure that makes the chunk wait, so every record after
        # it is unsent or sent again later (same key): the step ends just before it.
        first_wait = next(
            (
                i
                for i, (r, _) in enumerate(results)
                if isinstance(r, DeliveryError) and must_wait(r)
            ),
            None,
        )
        for attempt in itertools.chain.from_iterable(attempts for _, attempts in results):
            self.recorder.add(chunk, attempt)
        accounted = group if first_wait is None else group[:first_wait]
        for (sequence, raw), (result, _) in zip(accounted, results, strict=False):
            self._account(sequence, raw, result, outcome)
        if first_wait is None:
            through, wait = group[-1][0], None
        else:
            through, wait = group[first_wait][0] - 1, results[first_wait][0]
        pending.move_to(outcome.failures, through=through)
        return Step(outcome=outcome, done=False, through=through, wait=wait)

    def _account(self, sequence: int, raw: bytes, result: object, outcome: Outcome) -> None:
        if isinstance(result, Response):
            rejected = (
                rejected_records(result, record_count=1, secrets=self.target.secrets())
                if self.target.per_record
                else []
            )
            if not rejected:
                outcome.delivered += 1
                return
            reason, status, excerpt = rejected[0][1], result.status, result.excerpt
        elif isinstance(result, DeliveryError):
            reason, status, excerpt = too_large_hint(result), result.status, result.response_excerpt
        else:
            reason, status, excerpt = CANCELLED_REASON, None, ""
        outcome.failures.add(
            sequence=sequence, record=raw, reason=reason, status=status, excerpt=excerpt
        )

    def _send_all(
        self, chunk: RunChunk, group: list[tuple[int, bytes]]
    ) -> list[tuple[object, list[Attempt]]]:
        """Each record's result, in order: ``concurrency`` pool threads take the next record
        as they become free (one task per thread, not per record: a Future per request cost
        more CPU than the request's own bookkeeping). After a failure that makes the chunk
        wait, no further record is sent (they are ``_NOT_SENT``)."""
        results: list[tuple[object, list[Attempt]]] = [(_NOT_SENT, [])] * len(group)
        items = enumerate(group)
        lock = threading.Lock()
        stop = threading.Event()

        def work() -> None:
            try:
                while not stop.is_set():
                    with lock:
                        item = next(items, None)
                    if item is None:
                        return
                    index, (sequence, raw) = item
                    result = self._send_one(chunk, sequence, raw)
                    results[index] = result
                    if isinstance(result[0], DeliveryError) and must_wait(result[0]):
                        stop.set()
            finally:
                # The gate may have used this thread's database connection: a pool thread
                # must not keep one open.
                connection.close()

        tasks = [self.pool.submit(work) for _ in range(min(self.concurrency, len(group)))]
        for task in tasks:
            task.result()
        return results

    def _send_one(self, chunk: RunChunk, sequence: int, raw: bytes) -> tuple[object, list[Attempt]]:
        attempts: list[Attempt] = []
        try:
            url, body = self.target.single_request(raw)
        except ShapingError as exc:  # e.g. a value too long for a URL: this record fails, unsent
            return DeliveryError(str(exc), transient=False), attempts
        try:
            result = send_request(
                self.session,
                target=self.target,
                body=body,
                url=url,
                idempotency_key=f"{chunk.idempotency_key}:{sequence}",
                span=(sequence, sequence, 1),
                attempt=chunk.attempts + 1,
                abort=self.abort,
                log=attempts.append,
                gate=self.gate,
            )
        except Aborted as exc:
            return exc, attempts
        return result, attempts
