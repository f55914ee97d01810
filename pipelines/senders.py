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
import logging
import threading
import weakref
from collections.abc import Generator

from django.db import connection, transaction

from osmos.outbound.client import DeliveryError, OutboundSession, Response
from osmos.outbound.gate import DestinationGate
from pipelines.chunk_reader import HeldChunk, chunk_blocks, chunk_texts
from pipelines.models import ChunkState, Run, RunChunk
from pipelines.records import (
    BatchBody,
    FailureSpool,
    Outcome,
    Preparer,
    Step,
    StoredAsIs,
)
from pipelines.request_log import RequestRecorder
from pipelines.results import rejected_records
from pipelines.retries import Aborted, Attempt, Target, must_wait, send_request, too_large_hint

logger = logging.getLogger(__name__)

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
        self._ahead: HeldChunk | None = None

    def deliver(self, chunk: RunChunk) -> Generator[Step, None, None]:
        """One step: the whole chunk accounted for, or (a failure that makes it wait) none of
        it: the next attempt sends it again, whole, with the same idempotency keys."""
        outcome = Outcome(failures=FailureSpool())
        body = self._read_ahead_body(chunk)
        # The next chunk is computed meanwhile, from now on: while this one is read (by
        # another PostgreSQL backend) and while it is sent.
        self._start_reading_ahead(chunk)
        if body is None:
            body = self._read(chunk, outcome.failures)
        try:
            if len(body):
                self._send(chunk, body, 0, len(body), outcome)
        except _Wait as wait:
            self._drop_read_ahead()
            outcome.failures.close()
            yield Step(outcome=Outcome(failures=FailureSpool()), done=False, wait=wait.error)
            return
        finally:
            body.close()
        try:
            yield Step(outcome=outcome, done=True)
        except GeneratorExit:  # the engine stops after this chunk: nothing more to read
            self._drop_read_ahead()
            raise

    def _read(self, chunk: RunChunk, failures: FailureSpool) -> BatchBody:
        """The chunk's records not confirmed yet, as a body."""
        body = BatchBody(prefix=self.target.prefix, suffix=self.target.suffix)
        try:
            # In a transaction, the server-side cursor streams rows while we map them; in
            # autocommit PostgreSQL would first materialize the whole chunk (WITH HOLD).
            # Each reader is closed here, not by the garbage collector (``chunk_texts``).
            with transaction.atomic():
                if isinstance(self.prepare, StoredAsIs):
                    with contextlib.closing(chunk_blocks(self.run, chunk)) as blocks:
                        for sequences, raws in blocks:
                            body.add_block(sequences, raws)
                else:
                    with contextlib.closing(chunk_texts(self.run, chunk)) as rows:
                        for sequence, raw in self.prepare(rows, failures):
                            body.add(sequence, raw)
        except BaseException:
            body.close()
            raise
        return body

    # The next chunk's rows are computed by PostgreSQL while this one is read and sent
    # (``HeldChunk``): only for records sent as stored (``StoredAsIs``), where reading is
    # mostly PostgreSQL's work (reading mapped records in a thread contended for the GIL
    # and was slower, docs/benchmarks.md), and only on PostgreSQL. At most one chunk ahead.

    def _start_reading_ahead(self, chunk: RunChunk) -> None:
        self._drop_read_ahead()
        if not isinstance(self.prepare, StoredAsIs) or connection.vendor != "postgresql":
            return
        if connection.in_atomic_block:
            # Run inside a caller's transaction: its rows may be visible to it alone, and
            # another connection would read an empty or partial chunk.
            return
        following = (
            RunChunk.objects.filter(
                run_id=self.run.id, state=ChunkState.PENDING, index__gt=chunk.index
            )
            .order_by("index")
            .first()
        )
        if following is not None:
            self._ahead = HeldChunk(self.run, following)
            # Closed when taken or dropped; else when the sender goes (the run stopped here:
            # its slice is over, it was cancelled, the lease was lost).
            weakref.finalize(self, self._ahead.close)

    def _read_ahead_body(self, chunk: RunChunk) -> BatchBody | None:
        """The body of ``chunk`` from the rows computed ahead (None: none, or not of this
        chunk's records, or computing them failed)."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        if not ahead.matches(chunk):
            ahead.close()
            return None
        blocks = ahead.blocks()
        if blocks is None:
            return None
        body = BatchBody(prefix=self.target.prefix, suffix=self.target.suffix)
        try:
            for sequences, raws in blocks:
                body.add_block(sequences, raws)
        except Exception:
            # Read in turn instead, where an error is handled as ever.
            logger.warning("reading chunk %s computed ahead failed", chunk.pk, exc_info=True)
            body.close()
            ahead.close()
            return None
        except BaseException:
            body.close()
            ahead.close()
            raise
        expected = chunk.record_count - chunk.delivered - chunk.failed
        if len(body) != expected:
            # Another connection saw other rows than the chunk holds (it never should: the
            # range's records were committed before the run was planned). Never send a
            # short body: read the chunk in turn.
            logger.warning(
                "chunk %s computed ahead had %s of its %s records; read again",
                chunk.pk,
                len(body),
                expected,
            )
            body.close()
            return None
        return body

    def _drop_read_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.close()

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
