"""Sending a chunk in batch mode (JSON arrays, bisection), and the request log of both modes
(single mode: ``pipelines.single``).

A sender turns a chunk into ``Step`` s (records delivered, and the failed ones with their
reasons; or where the chunk stops to wait for its next attempt); it writes only the request
log. Confirming the steps, and the waiting, is the engine's job (``pipelines.delivery``).

With ``response_format: per_record`` (SPEC §5.3) a 2xx answer may reject some records of
the request: those fail with the destination's reason, the others are delivered.

A destination's body template (SPEC §3.2) wraps each request's records: batch mode writes
its bytes once around the streamed array (``BatchBody``: bisected halves too), single mode
around each object; a rejected ``index`` still counts records, not the envelope. A
per-record URL is rendered for each record; a record that cannot fill it fails, unsent.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Generator

from django.db import transaction

from osmos.outbound.client import DeliveryError, OutboundSession, Response
from osmos.outbound.gate import DestinationGate
from pipelines.models import Run, RunChunk
from pipelines.records import (
    BatchBody,
    FailureSpool,
    Outcome,
    Preparer,
    Step,
    chunk_texts,
)
from pipelines.request_log import RequestRecorder
from pipelines.results import rejected_records
from pipelines.retries import Aborted, Attempt, Target, must_wait, send_request, too_large_hint

CANCELLED_REASON = "The run was cancelled before this record was sent."


class _Wait(Exception):
    def __init__(self, error: DeliveryError) -> None:
        self.error = error


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
        gate: DestinationGate,
    ) -> None:
        self.gate = gate
        self.run = run
        self.session = session
        self.target = target
        self.split = split
        self.prepare = prepare
        self.abort = abort
        self.recorder = recorder

    def deliver(self, chunk: RunChunk) -> Generator[Step, None, None]:
        """One step: the whole chunk accounted for, or (a failure that makes it wait) none of
        it: the next attempt sends it again, whole, with the same idempotency keys."""
        outcome = Outcome(failures=FailureSpool())
        body = BatchBody(prefix=self.target.prefix, suffix=self.target.suffix)
        try:
            # In a transaction, the server-side cursor streams rows while we map them; in
            # autocommit PostgreSQL would first materialize the whole chunk (WITH HOLD).
            with transaction.atomic(), contextlib.closing(chunk_texts(self.run, chunk)) as rows:
                for sequence, raw in self.prepare(rows, outcome.failures):
                    body.add(sequence, raw)
            if len(body):
                self._send(chunk, body, 0, len(body), outcome)
        except _Wait as wait:
            outcome.failures.close()
            yield Step(outcome=Outcome(failures=FailureSpool()), done=False, wait=wait.error)
            return
        finally:
            body.close()
        yield Step(outcome=outcome, done=True)

    def _send(self, chunk: RunChunk, body: BatchBody, start: int, stop: int, outcome: Outcome):
        first, last = body.sequences[start], body.sequences[stop - 1]
        whole = start == 0 and stop == len(body)
        key = chunk.idempotency_key if whole else f"{chunk.idempotency_key}:{first}-{last}"

        def log(attempt: Attempt) -> None:
            self.recorder.add(chunk, attempt)
            self.recorder.flush()

        try:
            result = send_request(
                self.session,
                target=self.target,
                body=body.part(start, stop),
                idempotency_key=key,
                span=(first, last, stop - start),
                attempt=chunk.attempts + 1,
                abort=self.abort,
                log=log,
                gate=self.gate,
            )
        except Aborted:
            self._fail(body, start, stop, outcome, reason=CANCELLED_REASON)
            return
        if isinstance(result, Response):
            self._accept(body, start, stop, outcome, result)
            return
        if must_wait(result):
            raise _Wait(result)
        bisect = (
            self.split
            and stop - start > 1
            and result.status is not None
            and 400 <= result.status < 500
        )
        if bisect:
            middle = (start + stop) // 2
            self._send(chunk, body, start, middle, outcome)
            self._send(chunk, body, middle, stop, outcome)
            return
        reason = too_large_hint(result)
        self._fail(body, start, stop, outcome, reason, result.status, result.response_excerpt)

    def _accept(
        self, body: BatchBody, start: int, stop: int, outcome: Outcome, response: Response
    ) -> None:
        rejected = (
            rejected_records(response, record_count=stop - start, secrets=self.target.secrets())
            if self.target.per_record
            else []
        )
        for index, reason in rejected:
            outcome.failures.add(
                sequence=body.sequences[start + index],
                record=body.record(start + index),
                reason=reason,
                status=response.status,
                excerpt=response.excerpt,
            )
        outcome.delivered += stop - start - len(rejected)

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
