"""The one module that makes outbound HTTP requests to customer destinations.

Every request goes through `OutboundSession.send`, which
- forces a timeout, names the product in `User-Agent`, never follows redirects;
- runs the address guard (`osmos.outbound.urlguard`) when a connection is opened and connects
  to the address it checked: the host is resolved once, every answer is checked, and the TCP
  connection goes to a checked IP, so a DNS answer that changes between the check and the
  connect (DNS rebinding) is never used. `Host`, TLS SNI and certificate verification still
  use the host name of the URL;
- turns every failure into a `DeliveryError` that says whether a retry may succeed.

Header values are customer secrets: they never appear in messages or logs.
"""

from __future__ import annotations

import email.utils
import functools
import io
import logging
import math
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import IO, Any
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings

from osmos.outbound.headers import (
    RESERVED_HEADERS,
    VALUE_MESSAGE,
    is_valid_header_name,
    is_valid_header_value,
)
from osmos.outbound.urlguard import (
    DEFAULT_PORTS,
    IPAddress,
    Resolver,
    UnresolvableHost,
    UnsafeURL,
    parse_destination_url,
    resolve_and_check,
)

logger = logging.getLogger(__name__)

EXCERPT_BYTES = 2048
# A response body up to this size is read to the end so the connection can be reused;
# a longer one is cut off and its connection closed.
DRAIN_LIMIT_BYTES = 64 * 1024
DEFAULT_RETRY_AFTER_CAP_SECONDS = 300.0
# How long a checked DNS answer is reused: keeps one address (so one pool of keep-alive
# connections) per host during a run instead of a lookup per request.
DEFAULT_DNS_CACHE_SECONDS = 30.0
UPLOAD_BLOCK_BYTES = 256 * 1024


try:
    _VERSION = version("osmos")
except PackageNotFoundError:  # running from a checkout that was never installed
    _VERSION = "dev"
USER_AGENT = f"osmos/{_VERSION} (+https://osmos.example/webhooks)"


class DeliveryError(Exception):
    """A request that did not succeed.

    `transient` is True when the same request may succeed later (connection errors,
    timeouts, DNS failures, 408, 429, 5xx); `status` and `response_excerpt` are set when the
    destination answered; `retry_after` (seconds, capped) when it sent `Retry-After`.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status: int | None = None,
        retry_after: float | None = None,
        response_excerpt: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.status = status
        self.retry_after = retry_after
        self.response_excerpt = response_excerpt

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's default pickling would lose the keyword-only arguments.
        details = {k: v for k, v in vars(self).items() if k != "message"}
        return (partial(type(self), self.message, **details), ())


@dataclass(frozen=True)
class Response:
    """A 2xx answer: its status, the start of its body (at most 2 KB), and the time taken."""

    status: int
    excerpt: str
    elapsed: float


class OutboundSession:
    """Sends requests to customer destinations; reuses connections across `send` calls.

    Requests go straight to a urllib3 connection pool (no requests.Session, no adapter):
    a Session would read a whole 3xx body to prepare the redirect even when not following it,
    would bring cookies, proxies and .netrc credentials from the environment, and its layers
    cost more CPU per request than the request itself in single-record mode. urllib3 is told
    to retry nothing and follow no redirect; its errors are mapped to DeliveryError here.

    Use one per destination in a worker, and `close()` it (or use it as a context manager).
    It may be shared by threads. `resolver` (socket.getaddrinfo's signature) exists for
    tests; `ca_bundle` is a path to CA certificates trusted instead of the default ones
    (certifi's, as requests uses). `pool_size` is how many keep-alive connections per host
    are kept: at least the number of threads that share the session, or the extra
    connections are closed after each request.
    """

    def __init__(
        self,
        *,
        resolver: Resolver = socket.getaddrinfo,
        dns_cache_seconds: float = DEFAULT_DNS_CACHE_SECONDS,
        ca_bundle: str | None = None,
        pool_size: int = 10,
    ) -> None:
        self._resolver = resolver
        self._dns_cache_seconds = dns_cache_seconds
        self._pins: dict[tuple[str, int], tuple[float, IPAddress]] = {}
        self._pools = urllib3.PoolManager(
            num_pools=10,
            maxsize=pool_size,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_bundle or certifi.where(),
            # Large file bodies (batch mode) are sent in fewer, larger writes.
            blocksize=UPLOAD_BLOCK_BYTES,
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: list[tuple[str, str]],
        body: bytes | IO[bytes],
        idempotency_key: str,
        timeout: float,
    ) -> Response:
        """Send one request and return the 2xx answer; raise DeliveryError for anything else.

        `headers` are the destination's (secret) headers; `Content-Type: application/json`,
        `User-Agent` and `Idempotency-Key` are added. A file `body` is sent whole, from its
        start, streamed with a `Content-Length`; it must support seek.
        `timeout` (seconds) bounds connecting and each wait for data, and reading the body.
        """
        if not 0 < timeout < math.inf:
            raise ValueError("timeout must be a positive number of seconds")
        try:
            target = _target(url)
        except UnsafeURL as exc:
            raise DeliveryError(str(exc), transient=False) from None
        request_headers = _request_headers(headers, idempotency_key)
        request_headers["Host"] = target.host_header
        data: bytes | IO[bytes]
        if isinstance(body, bytes):
            data = body
        else:
            # An explicit length: urllib3 would otherwise send a file with chunked encoding.
            request_headers["Content-Length"] = str(body.seek(0, io.SEEK_END))
            body.seek(0)
            data = body
        started = time.monotonic()
        try:
            pool = self._pool(target)
            response = pool.urlopen(
                method.upper(),
                target.path,
                body=data,
                headers=request_headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                preload_content=False,
                release_conn=False,
            )
        except UnsafeURL as exc:  # a host without an address today may have one tomorrow
            raise DeliveryError(str(exc), transient=isinstance(exc, UnresolvableHost)) from None
        except (urllib3.exceptions.TimeoutError, urllib3.exceptions.ProtocolError) as exc:
            self.forget(target.host, target.port)
            raise _transport_error(exc, target.host, timeout) from exc
        except urllib3.exceptions.SSLError as exc:
            self.forget(target.host, target.port)
            raise _transport_error(exc, target.host, timeout) from exc
        except urllib3.exceptions.HTTPError as exc:
            # Anything else is about the request itself; its message could quote a header.
            raise DeliveryError(
                f"The request could not be sent ({type(exc).__name__}).", transient=False
            ) from None
        try:
            excerpt = _read_excerpt(response, deadline=started + timeout)
        finally:
            response.release_conn()
        elapsed = time.monotonic() - started
        # Host only: paths and queries may carry tokens too.
        logger.debug("%s answered %s in %.3f s", target.host, response.status, elapsed)
        return _result(response, excerpt, elapsed)

    def _pool(self, target: _Target) -> urllib3.HTTPConnectionPool:
        """The keep-alive pool of the checked address; for https the pool keeps the URL's
        host name for SNI and certificate verification (the connection's host is the IP)."""
        address = self.pinned_address(target.host, target.port)
        pool_kwargs = {"server_hostname": target.host} if target.scheme == "https" else None
        return self._pools.connection_from_host(
            host=str(address), port=target.port, scheme=target.scheme, pool_kwargs=pool_kwargs
        )

    def pinned_address(self, host: str, port: int) -> IPAddress:
        """The checked address to connect to (cached for a while); raises UnsafeURL."""
        now = time.monotonic()
        pin = self._pins.get((host, port))
        if pin is None or pin[0] <= now:
            addresses = resolve_and_check(host, port, resolver=self._resolver)
            pin = (now + self._dns_cache_seconds, addresses[0])
            self._pins[(host, port)] = pin
        return pin[1]

    def forget(self, host: str, port: int) -> None:
        """Drop the cached address, so that the next request resolves the host again."""
        self._pins.pop((host, port), None)

    def close(self) -> None:
        self._pools.clear()

    def __enter__(self) -> OutboundSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query
    host_header: str


@functools.lru_cache(maxsize=256)
def _target(url: str) -> _Target:
    """The checked shape of a URL (raises UnsafeURL); cached: a run sends to one URL."""
    destination = parse_destination_url(url)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(
        scheme=destination.scheme,
        host=destination.host,
        port=destination.port,
        path=path,
        host_header=_host_header(url),
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (seconds or an HTTP date), or None.

    The result is at least 0 and at most settings.DELIVERY_RETRY_AFTER_CAP_SECONDS.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    cap = getattr(settings, "DELIVERY_RETRY_AFTER_CAP_SECONDS", DEFAULT_RETRY_AFTER_CAP_SECONDS)
    return min(max(seconds, 0.0), float(cap))


def _request_headers(headers: list[tuple[str, str]], idempotency_key: str) -> dict[str, str]:
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


def _host_header(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port and parts.port != DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _read_excerpt(response: urllib3.BaseHTTPResponse, *, deadline: float) -> str:
    """The start of the body, decoded leniently. Never raises: the body only informs, so a
    read error or the deadline just ends the reading, and the connection is then closed
    (instead of going back to the pool with unread data on it)."""
    head = bytearray()
    size = 0
    complete = False
    try:
        while True:
            chunk = response.read(8192, decode_content=True)
            if not chunk:
                complete = True
                break
            if len(head) < EXCERPT_BYTES:
                head += chunk[: EXCERPT_BYTES - len(head)]
            size += len(chunk)
            if size > DRAIN_LIMIT_BYTES or time.monotonic() > deadline:
                break
    except (urllib3.exceptions.HTTPError, OSError):
        pass
    if not complete:
        response.close()
    return head.decode("utf-8", errors="replace")


def _result(response: urllib3.BaseHTTPResponse, excerpt: str, elapsed: float) -> Response:
    status = response.status
    if 200 <= status < 300:
        return Response(status=status, excerpt=excerpt, elapsed=elapsed)
    if 300 <= status < 400:
        location = response.headers.get("Location", "")[:200] or "no Location"
        raise DeliveryError(
            f"The destination answered {status} (redirect to {location}); "
            "redirects are not followed, set the final URL on the destination.",
            transient=False,
            status=status,
            response_excerpt=excerpt,
        )
    transient = status in (408, 429) or 500 <= status < 600
    raise DeliveryError(
        f"The destination answered {status} {response.reason or ''}".rstrip() + ".",
        transient=transient,
        status=status,
        retry_after=parse_retry_after(response.headers.get("Retry-After")) if transient else None,
        response_excerpt=excerpt,
    )


def _transport_error(exc: urllib3.exceptions.HTTPError, host: str, timeout: float) -> DeliveryError:
    # NewConnectionError is a ConnectTimeoutError for urllib3's backward compatibility.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        message = f"Could not connect to {host}: {_root_cause(exc)}."
    elif isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        message = f"Connecting to {host} timed out after {timeout:g} s."
    elif isinstance(exc, urllib3.exceptions.TimeoutError):
        message = f"{host} did not answer within {timeout:g} s."
    elif isinstance(exc, urllib3.exceptions.SSLError):
        message = f"The TLS connection to {host} failed: {_root_cause(exc)}."
    else:
        message = f"Could not connect to {host}: {_root_cause(exc)}."
    return DeliveryError(message, transient=True)


def _root_cause(exc: BaseException) -> str:
    """The innermost error behind urllib3's wrappers, as a short text."""
    for _ in range(10):  # urllib3 wraps in .reason, __cause__ or args[0]
        wrapped = [getattr(exc, "reason", None), exc.__cause__, *exc.args[:1]]
        inner = next((e for e in wrapped if isinstance(e, BaseException)), None)
        if inner is None:
            break
        exc = inner
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.rstrip(".")
    return str(exc).rstrip(".") or type(exc).__name__
