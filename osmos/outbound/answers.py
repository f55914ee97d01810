"""What a request to a destination comes back as: a `Response` (2xx) or a `DeliveryError`.

Shared by both clients (`osmos.outbound.client`, one request per thread over urllib3, and
`osmos.outbound.curl`, many requests from one thread over libcurl) so that an answer means
the same whichever sent it: SPEC §5.1 decides what is transient, excerpts are scrubbed of the
destination's secrets, a redirect is a permanent failure that names its target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from osmos.outbound.ratelimit import wait_from_headers
from osmos.outbound.scrub import scrub

EXCERPT_BYTES = 2048
# The body kept for the caller (per-record results); a longer body is cut there and its
# connection closed instead of being read to the end.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
TRANSIENT_STATUSES = frozenset((408, 425, 429))

try:
    _VERSION = version("osmos")
except PackageNotFoundError:  # running from a checkout that was never installed
    _VERSION = "dev"
USER_AGENT = f"osmos/{_VERSION} (+https://osmos.example/webhooks)"


def is_transient_status(status: int) -> bool:
    """SPEC §5.1: 408, 425, 429 and 5xx may succeed later; any other status will not."""
    return status in TRANSIENT_STATUSES or 500 <= status < 600


class DeliveryError(Exception):
    """A request that did not succeed.

    `transient` is True when the same request may succeed later (connection errors,
    timeouts, DNS failures, 408, 425, 429, 5xx); `status`, `headers` (lower-case names) and
    `response_excerpt` (scrubbed) are set when the destination answered; `retry_after`
    (seconds, capped) when it asked for a wait (`Retry-After`, or a RateLimit quota at 0).
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status: int | None = None,
        retry_after: float | None = None,
        response_excerpt: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.status = status
        self.retry_after = retry_after
        self.response_excerpt = response_excerpt
        self.headers = dict(headers) if headers is not None else None

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's default pickling would lose the keyword-only arguments.
        details = {k: v for k, v in vars(self).items() if k != "message"}
        return (partial(type(self), self.message, **details), ())


@dataclass(frozen=True, slots=True)
class Response:
    """A 2xx answer: its status, headers (lower-case names, repeated ones joined by ", "),
    the first `max_body_bytes` of its body, the start of that body as text (at most 2 KB,
    scrubbed) and the time taken (seconds)."""

    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    excerpt: str
    elapsed: float


def excerpt_of(content: bytes, secrets: Sequence[str]) -> str:
    return scrub(content[:EXCERPT_BYTES].decode("utf-8", errors="replace"), secrets)


def answer(
    *,
    host: str,
    status: int,
    reason: str | None,
    headers: dict[str, str],
    content: bytes,
    complete: bool | None,
    secrets: Sequence[str],
    timeout: float,
    elapsed: float,
) -> Response:
    """The `Response` of an answer whose head arrived, or raise its DeliveryError.

    `complete`: True when the body was read to its end, False when cut at the size limit or
    broken off by the server, None when the deadline passed first (a 2xx is then a transient
    failure; for other statuses the status decides and the excerpt is what arrived in time).
    """
    excerpt = excerpt_of(content, secrets)
    if 200 <= status < 300 and complete is None:
        raise DeliveryError(
            f"{host} answered {status} but did not send the complete answer within "
            f"{timeout:g} s (the limit for the whole request).",
            transient=True,
            response_excerpt=excerpt,
            headers=headers,
        )
    if 200 <= status < 300:
        return Response(status, headers, content, excerpt, elapsed)
    raise status_error(status, reason, headers, excerpt)


def status_error(
    status: int, reason: str | None, headers: dict[str, str], excerpt: str
) -> DeliveryError:
    if 300 <= status < 400:
        location = headers.get("location", "")[:200] or "no Location"
        return DeliveryError(
            f"The destination answered {status} (redirect to {location}); "
            "redirects are not followed, set the final URL on the destination.",
            transient=False,
            status=status,
            response_excerpt=excerpt,
            headers=headers,
        )
    transient = is_transient_status(status)
    return DeliveryError(
        f"The destination answered {status} {reason or ''}".rstrip() + ".",
        transient=transient,
        status=status,
        retry_after=wait_from_headers(status, headers) if transient else None,
        response_excerpt=excerpt,
        headers=headers,
    )


def timed_out(host: str, timeout: float) -> DeliveryError:
    return DeliveryError(
        f"{host} did not complete the request within {timeout:g} s "
        "(the limit for the whole request).",
        transient=True,
    )
