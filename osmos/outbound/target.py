"""Where a request goes and what it carries, shared by both clients: the checked shape of
the URL, the checked address to connect to (the pin), and the request's headers."""

from __future__ import annotations

import functools
import io
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

from osmos.outbound.answers import USER_AGENT, DeliveryError
from osmos.outbound.headers import (
    RESERVED_HEADERS,
    VALUE_MESSAGE,
    is_valid_header_name,
    is_valid_header_value,
)
from osmos.outbound.signing import signature_headers
from osmos.outbound.urlguard import (
    DEFAULT_PORTS,
    IPAddress,
    Resolver,
    UnsafeURL,
    parse_destination_url,
    resolve_and_check,
)

# How long a checked DNS answer is reused: keeps one address (so one pool of keep-alive
# connections) per host during a run instead of a lookup per request.
DEFAULT_DNS_CACHE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query
    host_header: str


@functools.lru_cache(maxsize=256)
def target_of(url: str) -> Target:
    """The checked shape of a URL (raises UnsafeURL); cached: a run sends to one URL."""
    destination = parse_destination_url(url)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(
        scheme=destination.scheme,
        host=destination.host,
        port=destination.port,
        path=path,
        host_header=host_header(url),
    )


def checked_target(url: str) -> Target:
    """`target_of`, with a refused URL as a permanent DeliveryError."""
    try:
        return target_of(url)
    except UnsafeURL as exc:
        raise DeliveryError(str(exc), transient=False) from None


def request_headers(headers: list[tuple[str, str]], idempotency_key: str) -> dict[str, str]:
    """The destination's (secret) headers, checked, with the ones osmos sets."""
    result: dict[str, str] = {}
    for name, value in headers:
        if not is_valid_header_name(name):
            raise DeliveryError(f"The header name {name!r} is not valid.", transient=False)
        if name.lower() in RESERVED_HEADERS:  # set below or by the connection
            continue
        if not is_valid_header_value(value):
            raise DeliveryError(
                f"The value of the header {name} is not valid. {VALUE_MESSAGE}", transient=False
            )
        result[name] = value
    result["Content-Type"] = "application/json"
    result["User-Agent"] = USER_AGENT
    result["Idempotency-Key"] = idempotency_key
    return result


def sign(
    headers: dict[str, str],
    *,
    idempotency_key: str,
    body: bytes | IO[bytes],
    signing_secrets: Sequence[str],
) -> None:
    """Add the Standard Webhooks headers (SPEC §5.4) over the exact bytes sent, with
    `webhook-id` = the idempotency key and the time of this attempt; a file body is read from
    its start and left there."""
    if signing_secrets:
        if not isinstance(body, bytes):
            body.seek(0)
        headers.update(
            signature_headers(
                msg_id=idempotency_key,
                timestamp=int(time.time()),
                body=body,
                secrets=signing_secrets,
            )
        )
        if not isinstance(body, bytes):
            body.seek(0)


def body_length(body: bytes | IO[bytes]) -> int:
    """The length of a body; a file is measured and left at its start."""
    if isinstance(body, bytes):
        return len(body)
    length = body.seek(0, io.SEEK_END)
    body.seek(0)
    return length


def host_header(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port and parts.port != DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


class Pins:
    """The checked address of each (host, port), kept for a while: the host is resolved
    once, every answer is checked (`resolve_and_check`), and connections go to the first one,
    so a DNS answer that changes between the check and the connect (DNS rebinding) is never
    used."""

    def __init__(
        self,
        resolver: Resolver = socket.getaddrinfo,
        seconds: float = DEFAULT_DNS_CACHE_SECONDS,
    ) -> None:
        self._resolver = resolver
        self._seconds = seconds
        self._pins: dict[tuple[str, int], tuple[float, IPAddress]] = {}

    def address(self, host: str, port: int) -> IPAddress:
        """The checked address to connect to (cached for a while); raises UnsafeURL."""
        now = time.monotonic()
        pin = self._pins.get((host, port))
        if pin is None or pin[0] <= now:
            addresses = resolve_and_check(host, port, resolver=self._resolver)
            pin = (now + self._seconds, addresses[0])
            self._pins[(host, port)] = pin
        return pin[1]

    def forget(self, host: str, port: int) -> None:
        """Drop the cached address, so that the next request resolves the host again."""
        self._pins.pop((host, port), None)
