"""Single mode: one record per request, ``concurrency`` requests in flight at once.

The run's own thread drives every request through one ``CurlSession`` (libcurl's multi
interface, ``osmos.outbound.curl``): no thread per request, and the HTTP work is libcurl's C
code. Each request still goes through the destination's gate (a permit per request: rate
limit, concurrency across processes, pauses; the gate learns from every answer), gets its own
``Idempotency-Key`` and per-record URL (``Target.single_request``: the address guard checks
it), and the same quick retry as ``pipelines.retries.send_request``: a transient failure is
tried once more after settings.DELIVERY_QUICK_RETRY_SECONDS, unless the destination asked for
a longer wait or the request took half its timeout or more.

Records go out in steps of about settings.DELIVERY_PROGRESS_SECONDS, each confirmed by the
engine (so a crash re-sends at most one step's records, with the same keys). Sending stops at
the first failure that makes the chunk wait (``must_wait``): the step ends just before that
record; records after it that were already in flight are sent again later, same keys.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from django.conf import settings

from osmos.outbound.client import DeliveryError, Response
from osmos.outbound.curl import CurlSession
from osmos.outbound.gate import Permit
from osmos.outbound.shaping import ShapingError
from pipelines.models import RunChunk
from pipelines.retries import (
    GATE_MAX_WAIT_SECONDS,
    Aborted,
    Attempt,
    Throttled,
    must_wait,
)
from pipelines.single_steps import NOT_SENT, StepSender

# While requests are in flight, a gate that is not open is asked again when it says a permit
# may be free (its wait hint: a send time, a pause's end), and at least this often.
GATE_POLL_SECONDS = 0.05


class _Flight:
    """One record's request in flight."""

    __slots__ = ("index", "permit", "round", "started", "url")

    def __init__(self, index: int, permit: Permit, round_: int, started: float, url: str):
        self.index = index
        self.permit = permit
        self.round = round_
        self.started = started
        self.url = url


class SingleSender(StepSender):
    """Sends a chunk one record per request, ``concurrency`` at a time, in confirmed steps.

    Every database write stays with the engine and the request log, in the run's thread.
    """

    def __init__(self, *, session: CurlSession, **common: Any) -> None:
        super().__init__(**common)
        self.session = session

    def _send_step(
        self, chunk: RunChunk, group: list[tuple[int, bytes]]
    ) -> tuple[list[object], list[list[Attempt]]]:
        return _Group(self, chunk, group).run()


class _Group:
    """Sends one step's records and collects each one's result and attempts, in order."""

    def __init__(self, sender: SingleSender, chunk: RunChunk, group: list[tuple[int, bytes]]):
        self.sender = sender
        self.chunk = chunk
        self.group = group
        self.results: list[object] = [NOT_SENT] * len(group)
        self.attempts: list[list[Attempt]] = [[] for _ in group]
        self.requests: dict[int, tuple[str, bytes]] = {}
        self.fresh = iter(range(len(group)))
        self.retries: collections.deque[tuple[float, int]] = collections.deque()
        self.flying: dict[int, _Flight] = {}
        self.stopped = False  # a failure made the chunk wait: no new record is started

    def run(self) -> tuple[list[object], list[list[Attempt]]]:
        sender = self.sender
        session = sender.session
        try:
            while True:
                self._launch()
                if not self.flying:
                    if not self.retries:
                        break
                    self._wait_for_retry()
                    continue
                for index, result in session.poll(self._poll_seconds()):
                    self._landed(self.flying.pop(index), result)  # type: ignore[arg-type]
        finally:
            for flight in self.flying.values():  # only when an error escapes
                flight.permit.release()
        return self.results, self.attempts

    def _poll_seconds(self) -> float:
        if self.retries:
            return max(0.0, min(1.0, self.retries[0][0] - time.monotonic()))
        return 1.0

    def _next(self) -> tuple[int, int] | None:
        """The next (index, round) to send now: a quick retry that is due, else a new record."""
        if self.retries and self.retries[0][0] <= time.monotonic():
            return self.retries.popleft()[1], 1
        if self.stopped:
            return None
        index = next(self.fresh, None)
        return None if index is None else (index, 0)

    def _launch(self) -> None:
        sender = self.sender
        while len(self.flying) < sender.concurrency:
            item = self._next()
            if item is None:
                return
            index, round_ = item
            if sender.abort.is_set():
                self.results[index] = Aborted()
                continue
            request = self._request(index)
            if request is None:
                continue
            permit = self._permit(index)
            if permit is None:
                return
            self._start(index, round_, request, permit)

    def _request(self, index: int) -> tuple[str, bytes] | None:
        request = self.requests.get(index)
        if request is None:
            try:
                request = self.sender.target.single_request(self.group[index][1])
            except ShapingError as exc:  # e.g. a value too long for a URL: fails, unsent
                self.results[index] = DeliveryError(str(exc), transient=False)
                return None
            self.requests[index] = request
        return request

    def _permit(self, index: int) -> Permit | None:
        """A gate permit for record ``index``, waiting at most GATE_MAX_WAIT_SECONDS while
        the requests in flight go on; None (the record is ``Throttled``, or the run was
        aborted meanwhile) when it did not open."""
        gate, session = self.sender.gate, self.sender.session
        permit = gate.acquire(max_wait=0)
        if permit is not None:
            return permit
        deadline = time.monotonic() + GATE_MAX_WAIT_SECONDS
        while True:
            # First send what was started (libcurl sends when polled) and land what ended.
            for other, result in session.poll(0):
                self._landed(self.flying.pop(other), result)  # type: ignore[arg-type]
            left = max(0.0, deadline - time.monotonic())
            hint = gate.wait_hint()
            if not self.flying:
                permit = gate.acquire(max_wait=left)
            elif gate.rate is not None and hint <= GATE_POLL_SECONDS:
                # A send time is due soon: the gate sleeps until it exactly, so the request
                # leaves on time (a late one could bunch with the next: see the gate).
                permit = gate.acquire(max_wait=min(left, hint + 0.005))
            else:
                pause = min(max(hint, 0.001), GATE_POLL_SECONDS, left)
                for other, result in session.poll(pause):
                    self._landed(self.flying.pop(other), result)  # type: ignore[arg-type]
                permit = gate.acquire(max_wait=0)
            if permit is not None:
                return permit
            if self.sender.abort.is_set():
                self.results[index] = Aborted()
                return None
            if time.monotonic() >= deadline:
                self.results[index] = Throttled(retry_after=max(gate.wait_hint(), 0.05))
                self.stopped = True
                return None

    def _start(self, index: int, round_: int, request: tuple[str, bytes], permit: Permit) -> None:
        """Start the request now (a permit's send time is now: a request left waiting in
        libcurl until the next poll would leave late)."""
        sender, chunk = self.sender, self.chunk
        target = sender.target
        url, body = request
        sequence = self.group[index][0]
        started = time.monotonic()
        try:
            sender.session.start(
                target.method,
                url,
                headers=target.headers,
                body=body,
                idempotency_key=f"{chunk.idempotency_key}:{sequence}",
                timeout=target.timeout,
                tag=index,
                signing_secrets=target.signing,
            )
        except DeliveryError as exc:  # refused before sending (address guard, headers)
            permit.release()
            # Kept as a result: without the traceback that would pin this stack's frames.
            self._landed(_Flight(index, permit, round_, started, url), exc.with_traceback(None))
            return
        self.flying[index] = _Flight(index, permit, round_, started, url)
        if sender.gate.rate is not None:
            for other, result in sender.session.poll(0):  # sends it now
                self._landed(self.flying.pop(other), result)  # type: ignore[arg-type]

    def _landed(self, flight: _Flight, result: Response | DeliveryError) -> None:
        """Account for a request that ended (the gate learns from its answer)."""
        flight.permit.release()
        sender = self.sender
        index, sequence = flight.index, self.group[flight.index][0]
        now = time.monotonic()
        sender.gate.observe(result.status, result.headers)
        if isinstance(result, DeliveryError):
            error, excerpt = result.message, result.response_excerpt
        else:
            error, excerpt = "", result.excerpt
        self.attempts[index].append(
            Attempt(
                sequence,
                sequence,
                1,
                self.chunk.attempts + 1,
                result.status,
                int((now - flight.started) * 1000),
                error,
                url=flight.url,
                response_headers=result.headers,
                response_excerpt=excerpt,
            )
        )
        if isinstance(result, DeliveryError) and self._retry_soon(flight, result, now):
            self.retries.append((now + settings.DELIVERY_QUICK_RETRY_SECONDS, index))
            return
        self.results[index] = result
        if isinstance(result, DeliveryError) and must_wait(result):
            self.stopped = True

    def _retry_soon(self, flight: _Flight, error: DeliveryError, now: float) -> bool:
        """The quick retry of ``pipelines.retries.send_request``: once, for a blip."""
        quick = settings.DELIVERY_QUICK_RETRY_SECONDS
        slow = now - flight.started >= self.sender.target.timeout / 2
        return not (
            flight.round
            or not error.transient
            or quick <= 0
            or (error.retry_after or 0.0) > quick
            or slow
        )

    def _wait_for_retry(self) -> None:
        """Nothing in flight: wait for the next quick retry (an abort cancels it)."""
        due, index = self.retries[0]
        if self.sender.abort.wait(max(0.0, due - time.monotonic())):
            self.retries.popleft()
            self.results[index] = Aborted()
