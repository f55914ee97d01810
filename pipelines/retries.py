"""Sending one request with bounded retries: backoff with jitter, Retry-After honoured.

Transient failures (connection errors, timeouts, 408, 429, 5xx: see ``osmos.outbound.client``) are
retried up to settings.DELIVERY_MAX_ATTEMPTS times; the wait between attempts is cut short
when the run is cancelled or its lease lost (``abort``).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from django.conf import settings

from connectors.models import DestinationSettings
from osmos.outbound.client import DeliveryError, OutboundSession


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
