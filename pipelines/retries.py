"""One request of a run, and the durable retry schedule of its chunk (SPEC §5.1).

A request that fails transiently (connection errors, timeouts, 408, 425, 429, 5xx: see
``osmos.outbound``) is tried once more after settings.DELIVERY_QUICK_RETRY_SECONDS, inside
the worker; if that fails too, the chunk waits: its next attempt is due after the next step
of settings.DELIVERY_RETRY_SCHEDULE (never sooner than the destination's Retry-After), stored
in the database, and the worker moves on (``pipelines.delivery``). Nothing here waits longer
than the quick retry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

import msgspec
from django.conf import settings
from django.utils import timezone

from connectors.models import DestinationSettings, ResponseFormat, WriteMode
from osmos.outbound.client import DeliveryError, OutboundSession, Response
from osmos.outbound.gate import DestinationGate
from osmos.outbound.shaping import envelope, render_url, url_fields

_decode = msgspec.json.Decoder().decode

GONE = 410
# The longest a request waits inside the worker for the destination's gate (its rate limit,
# concurrency or a pause it asked for); past that the chunk waits outside, holding nothing.
GATE_MAX_WAIT_SECONDS = 5.0


class Throttled(DeliveryError):
    """No request was sent: the destination's gate did not open within the wait allowed (its
    rate limit, its concurrency, or a pause it asked for). Not an attempt: the chunk waits
    ``retry_after`` seconds and does not move along its retry schedule."""

    def __init__(self, *, retry_after: float) -> None:
        super().__init__(
            "Waiting for the destination's rate limit or pause.",
            transient=True,
            retry_after=retry_after,
        )


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
    url: str = ""  # as sent: per-record URLs differ by record (SPEC §3.2)
    # The destination's answer (none after a connection error or timeout): its headers
    # (lower-case names, not yet scrubbed: the request log scrubs what it keeps) and the
    # client's scrubbed excerpt of its body (pipelines.request_log).
    response_headers: Mapping[str, str] | None = None
    response_excerpt: str = ""


class Aborted(Exception):
    """The run was cancelled or its lease lost before a request was sent."""


@dataclass(slots=True)
class Target:
    """Where and how a run's requests go (header values are secrets: never logged)."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    timeout: float
    per_record: bool = False
    # The live ``whsec_`` secrets when the destination signs its requests (SPEC §5.4).
    signing: list[str] = field(default_factory=list)
    # The body template's bytes around the records (SPEC §3.2; osmos.outbound.shaping).
    prefix: bytes = b""
    suffix: bytes = b""
    # Single mode: ``url`` holds {{field}} placeholders, filled from each record.
    per_record_url: bool = False

    def secrets(self) -> list[str]:
        return [value for _, value in self.headers]

    @classmethod
    def of(cls, destination: DestinationSettings) -> Target:
        """Raises ShapingError for a body template the write mode refuses (the services never
        save one; the rules are checked again here, where they are applied)."""
        prefix, suffix = envelope(destination.body_template, destination.write_mode)
        return cls(
            method=destination.method,
            url=destination.url,
            headers=destination.decrypted_headers(),
            timeout=float(destination.timeout_seconds),
            per_record=destination.response_format == ResponseFormat.PER_RECORD,
            signing=destination.signing_secrets(now=timezone.now()),
            prefix=prefix,
            suffix=suffix,
            per_record_url=destination.write_mode == WriteMode.SINGLE
            and bool(url_fields(destination.url)),
        )

    def single_request(self, raw: bytes) -> tuple[str, bytes]:
        """The URL and body of one record's request (single mode). Raises ShapingError when
        the record cannot fill the URL (the record fails with that reason, unsent)."""
        url = render_url(self.url, _decode(raw)) if self.per_record_url else self.url
        return url, (self.prefix + raw + self.suffix if self.prefix else raw)


def must_wait(error: DeliveryError) -> bool:
    """Whether a failed request makes its chunk wait (and be tried again) rather than fail:
    a transient failure, or ``410 Gone`` (the destination is paused until a person resumes
    it; its records are not failed for it)."""
    return error.transient or error.status == GONE


def send_request(
    session: OutboundSession,
    *,
    target: Target,
    body: bytes | IO[bytes],
    idempotency_key: str,
    span: tuple[int, int, int],
    attempt: int,
    abort: threading.Event,
    log: Callable[[Attempt], None],
    gate: DestinationGate,
    url: str | None = None,
) -> Response | DeliveryError:
    """Send one request through the destination's ``gate``, with one quick retry of a
    transient failure; the 2xx answer, or the last error (``Throttled`` when the gate did
    not open in time: nothing was sent).

    ``span`` is (first sequence, last sequence, record count) and ``attempt`` the chunk's
    attempt number, for the request log. No quick retry when the destination asked for a
    longer pause (Retry-After), or when the request took half its timeout or more: the chunk
    waits on the schedule instead. Raises Aborted when
    ``abort`` is set before the request or during the quick wait. ``url``: this request's
    own URL (a per-record URL), else the target's.
    """
    url = url or target.url
    quick = settings.DELIVERY_QUICK_RETRY_SECONDS
    for round_ in (0, 1):
        if abort.is_set():
            raise Aborted()
        permit = gate.acquire(max_wait=GATE_MAX_WAIT_SECONDS)
        if permit is None:
            return Throttled(retry_after=max(gate.wait_hint(), 0.05))
        started = time.monotonic()
        try:
            with permit:
                response = session.send(
                    target.method,
                    url,
                    headers=target.headers,
                    body=body,
                    idempotency_key=idempotency_key,
                    timeout=target.timeout,
                    signing_secrets=target.signing,
                )
        except DeliveryError as exc:
            gate.observe(exc.status, exc.headers)
            log(
                Attempt(
                    *span,
                    attempt,
                    exc.status,
                    _ms_since(started),
                    exc.message,
                    url=url,
                    response_headers=exc.headers,
                    response_excerpt=exc.response_excerpt,
                )
            )
            retry_after = exc.retry_after or 0.0
            # A blip (a reset connection, a quick 503) is worth one more try at once; a
            # request that ran into its deadline is not: trying again would hold the worker
            # as long once more (a slow or dripping destination must not keep workers).
            slow = time.monotonic() - started >= target.timeout / 2
            if round_ or not exc.transient or quick <= 0 or retry_after > quick or slow:
                return exc.with_traceback(None)  # a result: its traceback would pin frames
            if abort.wait(quick):
                raise Aborted() from None
            continue
        gate.observe(response.status, response.headers)
        log(
            Attempt(
                *span,
                attempt,
                response.status,
                _ms_since(started),
                "",
                url=url,
                response_headers=response.headers,
                response_excerpt=response.excerpt,
            )
        )
        return response
    raise AssertionError("unreachable")  # pragma: no cover


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def next_delay(
    *, failed_attempts: int, retry_after: float | None, schedule: Sequence[float]
) -> float | None:
    """Seconds until the next attempt of a chunk whose ``failed_attempts`` attempts (1-based
    count) all failed transiently; None when the schedule is exhausted.

    The schedule's step, or the destination's Retry-After when that is longer.
    """
    if failed_attempts > len(schedule):
        return None
    return max(schedule[failed_attempts - 1], retry_after or 0.0)


def gave_up_reason(*, last_error: str, attempts: int, seconds: float) -> str:
    """Why the records of a chunk failed once its retry schedule was exhausted."""
    return (
        f"{last_error} Gave up after {attempts} attempt{'s' if attempts != 1 else ''} over "
        f"{_duration(seconds)} "
        "(the retry schedule is exhausted)."
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def too_large_hint(error: DeliveryError) -> str:
    """A 413's reason tells what to change (SPEC §5)."""
    if error.status != 413:
        return error.message
    return (
        f"{error.message} The request was too large for the destination: lower the "
        "destination's batch_size, or turn on split_failed_batches."
    )
