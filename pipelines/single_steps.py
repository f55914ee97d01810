"""What both single-mode senders share (``pipelines.single_threads``, ``pipelines.single``):
a chunk sent in steps of about settings.DELIVERY_PROGRESS_SECONDS, each confirmed by the
engine (a crash re-sends at most one step's records), and each record's result accounted.
A sender only says how one step's records are sent (``_send_step``)."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Generator, Sequence

from django.conf import settings

from osmos.outbound.client import DeliveryError, Response
from osmos.outbound.gate import DestinationGate
from pipelines.chunk_reader import chunk_texts
from pipelines.models import Run, RunChunk
from pipelines.records import (
    VALIDATION_GROUP,
    FailureBuffer,
    FailureSpool,
    Outcome,
    Preparer,
    Step,
)
from pipelines.results import rejected_records
from pipelines.retries import Attempt, Target, must_wait, too_large_hint
from pipelines.senders import CANCELLED_REASON, RequestRecorder

NOT_SENT = object()  # a record left unsent because an earlier one made the chunk wait


class StepSender:
    """Sends a chunk one record per request, ``concurrency`` at a time, in confirmed steps.
    Every database write stays with the engine and the request log, in the run's thread."""

    def __init__(
        self,
        *,
        run: Run,
        target: Target,
        prepare: Preparer,
        abort: threading.Event,
        recorder: RequestRecorder,
        concurrency: int,
        gate: DestinationGate,
    ) -> None:
        self.gate = gate
        self.run = run
        self.target = target
        self.prepare = prepare
        self.abort = abort
        self.recorder = recorder
        self.concurrency = concurrency
        # Records per step, adapted to the measured rate (starts small: a slow destination).
        self._step_size = concurrency

    def _send_step(
        self, chunk: RunChunk, group: list[tuple[int, bytes]]
    ) -> tuple[Sequence[object], Sequence[list[Attempt]]]:
        """Each record's result (a Response, a DeliveryError, or NOT_SENT) and attempts, in
        order; no record is sent after one whose failure makes the chunk wait."""
        raise NotImplementedError

    def deliver(self, chunk: RunChunk) -> Generator[Step, None, None]:
        pending = FailureBuffer()
        # The rows' cursor is closed when sending stops (here), not by the garbage collector
        # (see chunk_texts): a chunk that waits stops before its last row.
        with contextlib.closing(chunk_texts(self.run, chunk)) as rows:
            records = self.prepare(rows, pending)  # type: ignore[arg-type]
            while group := list(itertools.islice(records, self._step_size)):
                started = time.monotonic()
                step = self._step(chunk, group, pending)
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

    def _step(
        self, chunk: RunChunk, group: list[tuple[int, bytes]], pending: FailureBuffer
    ) -> Step:
        outcome = Outcome(failures=FailureSpool())
        results, attempts = self._send_step(chunk, group)
        # Sending stops at the first failure that makes the chunk wait, so every record after
        # it is unsent or sent again later (same key): the step ends just before it.
        first_wait = next(
            (i for i, r in enumerate(results) if isinstance(r, DeliveryError) and must_wait(r)),
            None,
        )
        for attempt in itertools.chain.from_iterable(attempts):
            self.recorder.add(chunk, attempt)
        accounted = group if first_wait is None else group[:first_wait]
        for (sequence, raw), result in zip(accounted, results, strict=False):
            self._account(sequence, raw, result, outcome)
        if first_wait is None:
            through, wait = group[-1][0], None
        else:
            through, wait = group[first_wait][0] - 1, results[first_wait]
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
