"""Single mode through a thread pool and urllib3 (``OutboundSession``): the engine's first
single-mode sender, selected by ``DELIVERY_SINGLE_CLIENT=threads``; the default is the
libcurl sender (``pipelines.single``), which needs a fraction of its CPU per record (see
docs/benchmarks.md).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connection

from osmos.outbound.client import DeliveryError, OutboundSession
from osmos.outbound.shaping import ShapingError
from pipelines.models import RunChunk
from pipelines.retries import Aborted, Attempt, must_wait, send_request
from pipelines.single_steps import NOT_SENT, StepSender


class ThreadedSingleSender(StepSender):
    """Sends a chunk one record per request, ``concurrency`` at a time, in steps of about
    settings.DELIVERY_PROGRESS_SECONDS (each confirmed by the engine, so a crash re-sends at
    most one step's records).

    The pool threads only make HTTP requests; every database write stays in the run's
    thread (so the pool holds no database connection).
    """

    def __init__(
        self, *, session: OutboundSession, pool: ThreadPoolExecutor, **common: Any
    ) -> None:
        super().__init__(**common)
        self.session = session
        self.pool = pool

    def _send_step(
        self, chunk: RunChunk, group: list[tuple[int, bytes]]
    ) -> tuple[list[object], list[list[Attempt]]]:
        pairs = self._send_all(chunk, group)
        return [result for result, _ in pairs], [attempts for _, attempts in pairs]

    def _send_all(
        self, chunk: RunChunk, group: list[tuple[int, bytes]]
    ) -> list[tuple[object, list[Attempt]]]:
        """Each record's result, in order: ``concurrency`` pool threads take the next record
        as they become free (one task per thread, not per record: a Future per request cost
        more CPU than the request's own bookkeeping). After a failure that makes the chunk
        wait, no further record is sent (they are ``NOT_SENT``)."""
        results: list[tuple[object, list[Attempt]]] = [(NOT_SENT, [])] * len(group)
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
