"""The one module that makes outbound HTTP requests to customer destinations.

Every request goes through `OutboundSession.send`, which
- bounds the WHOLE request by its `timeout`: connecting, the TLS handshake, sending the body
  and reading the complete answer (status line, headers, body) must all end by one deadline,
  whatever the server does (slow headers, one byte per second, an endless body). Each socket
  operation waits at most the time left until that deadline (`_DeadlineSocket`), so no
  sequence of slow reads can add up to more;
- names the product in `User-Agent`, never follows redirects;
- runs the address guard (`osmos.outbound.urlguard`) when a connection is opened and connects
  to the address it checked: the host is resolved once, every answer is checked, and the TCP
  connection goes to a checked IP, so a DNS answer that changes between the check and the
  connect (DNS rebinding) is never used. `Host`, TLS SNI and certificate verification still
  use the host name of the URL;
- returns a `Response` for a 2xx and turns everything else into a `DeliveryError` that says
  whether a retry may succeed (connection errors, timeouts, 408, 425, 429 and 5xx: SPEC §5.1);
- scrubs every excerpt it returns of the destination's secrets (`osmos.outbound.scrub`).

Header values are customer secrets: they never appear in messages or logs.
"""

from __future__ import annotations

import io
import logging
import math
import socket
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from osmos.outbound.answers import (
    DEFAULT_MAX_BODY_BYTES,
    EXCERPT_BYTES,
    TRANSIENT_STATUSES,
    USER_AGENT,
    DeliveryError,
    Response,
    answer,
    is_transient_status,
    status_error,
)
from osmos.outbound.target import (
    DEFAULT_DNS_CACHE_SECONDS,
    Pins,
    Target,
    body_length,
    checked_target,
    request_headers,
    sign,
    target_of,
)
from osmos.outbound.urlguard import IPAddress, Resolver, UnresolvableHost, UnsafeURL

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "EXCERPT_BYTES",
    "TRANSIENT_STATUSES",
    "USER_AGENT",
    "DeliveryError",
    "OutboundSession",
    "Response",
    "is_transient_status",
    "status_error",
]

# Kept under their old names (tests check that save and send agree through them).
_target = target_of
_request_headers = request_headers

logger = logging.getLogger(__name__)

UPLOAD_BLOCK_BYTES = 256 * 1024


class DeadlineExceeded(TimeoutError):
    """The whole-request deadline has passed (raised by a socket operation)."""


# The deadline of the request the current thread is sending (a monotonic time), read by every
# socket operation of its connection: a connection serves one request at a time, in the thread
# that sends it.
_request = threading.local()


def _time_left() -> float | None:
    deadline = getattr(_request, "deadline", None)
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("the deadline of the request has passed")
    return left


class _DeadlineSocket:
    """A connection's socket whose every blocking operation waits at most until the
    deadline of the current request (instead of a full timeout per operation)."""

    __slots__ = ("_sock", "_timeout")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._timeout = sock.gettimeout()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def _arm(self) -> None:
        left = _time_left()
        if left is not None:
            timeout = self._timeout
            self._sock.settimeout(left if timeout is None or left < timeout else timeout)

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout
        self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._timeout

    def recv(self, *args: Any) -> bytes:
        self._arm()
        return self._sock.recv(*args)

    def recv_into(self, *args: Any) -> int:
        self._arm()
        return self._sock.recv_into(*args)

    def send(self, *args: Any) -> int:
        self._arm()
        return self._sock.send(*args)

    def sendall(self, *args: Any) -> None:
        self._arm()  # sendall's timeout bounds the whole call (Python >= 3.5)
        self._sock.sendall(*args)

    def makefile(self, mode: str = "r", buffering: int | None = None, **kwargs: Any) -> Any:
        if mode != "rb":
            return self._sock.makefile(mode, buffering, **kwargs)
        # socket.makefile's reader, reading through this object so that reads are armed.
        self._sock._io_refs += 1  # type: ignore[attr-defined]
        raw = socket.SocketIO(self, "rb")  # type: ignore[arg-type]
        size = io.DEFAULT_BUFFER_SIZE if buffering is None or buffering < 0 else buffering
        return io.BufferedReader(raw, size)

    def _decref_socketios(self) -> None:
        self._sock._decref_socketios()  # type: ignore[attr-defined]


class _DeadlineConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        left = _time_left()
        if left is not None and (self.timeout is None or left < self.timeout):
            self.timeout = left
        sock = super()._new_conn()
        left = _time_left()  # the TLS handshake, if any, has what is left
        if left is not None:
            sock.settimeout(left)
        return sock

    def connect(self) -> None:
        super().connect()
        self.sock = _DeadlineSocket(self.sock)


class _DeadlineHTTPSConnection(_DeadlineConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


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
        self._pins = Pins(resolver, dns_cache_seconds)
        self._pools = urllib3.PoolManager(
            num_pools=10,
            maxsize=pool_size,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_bundle or certifi.where(),
            # Large file bodies (batch mode) are sent in fewer, larger writes.
            blocksize=UPLOAD_BLOCK_BYTES,
        )
        self._pools.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: list[tuple[str, str]],
        body: bytes | IO[bytes],
        idempotency_key: str,
        timeout: float,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        signing_secrets: Sequence[str] = (),
    ) -> Response:
        """Send one request and return the 2xx answer; raise DeliveryError for anything else.

        `headers` are the destination's (secret) headers; `Content-Type: application/json`,
        `User-Agent` and `Idempotency-Key` are added. A file `body` is sent whole, from its
        start, streamed with a `Content-Length`; it must support seek.
        `timeout` (seconds) bounds the whole request: connecting, sending and receiving the
        complete answer. A 2xx whose body is not complete by then is a transient failure; for
        other statuses the status decides and the excerpt is what arrived in time.
        `max_body_bytes`: how much of the body `Response.body` keeps; the rest is not read
        (the connection is then closed rather than reused).
        `signing_secrets`: the destination's live `whsec_` secrets; when given, the request is
        signed as Standard Webhooks (SPEC §5.4) with `webhook-id` = `idempotency_key` and the
        time of this attempt, over the exact bytes sent.
        """
        if not 0 < timeout < math.inf:
            raise ValueError("timeout must be a positive number of seconds")
        target = checked_target(url)
        secrets = [value for _name, value in headers]
        headers_out = request_headers(headers, idempotency_key)
        headers_out["Host"] = target.host_header
        if not isinstance(body, bytes):
            # An explicit length: urllib3 would otherwise send a file with chunked encoding.
            headers_out["Content-Length"] = str(body_length(body))
        sign(
            headers_out, idempotency_key=idempotency_key, body=body, signing_secrets=signing_secrets
        )
        started = time.monotonic()
        _request.deadline = started + timeout
        try:
            response = self._urlopen(target, method, body, headers_out, timeout)
            try:
                content, complete = _read_body(response, max_body_bytes)
            finally:
                response.release_conn()
        finally:
            _request.deadline = None
        elapsed = time.monotonic() - started
        # Host only: paths and queries may carry tokens too.
        logger.debug("%s answered %s in %.3f s", target.host, response.status, elapsed)
        return answer(
            host=target.host,
            status=response.status,
            reason=response.reason,
            headers={name.lower(): value for name, value in response.headers.itermerged()},
            content=content,
            complete=complete,
            secrets=secrets,
            timeout=timeout,
            elapsed=elapsed,
        )

    def _urlopen(
        self,
        target: Target,
        method: str,
        data: bytes | IO[bytes],
        request_headers: dict[str, str],
        timeout: float,
    ) -> urllib3.BaseHTTPResponse:
        try:
            pool = self._pool(target)
            return pool.urlopen(
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
        except (
            urllib3.exceptions.TimeoutError,
            urllib3.exceptions.ProtocolError,
            urllib3.exceptions.SSLError,
        ) as exc:
            self.forget(target.host, target.port)
            raise _transport_error(exc, target.host, timeout) from exc
        except urllib3.exceptions.HTTPError as exc:
            # Anything else is about the request itself; its message could quote a header.
            raise DeliveryError(
                f"The request could not be sent ({type(exc).__name__}).", transient=False
            ) from None

    def _pool(self, target: Target) -> urllib3.HTTPConnectionPool:
        """The keep-alive pool of the checked address; for https the pool keeps the URL's
        host name for SNI and certificate verification (the connection's host is the IP)."""
        address = self.pinned_address(target.host, target.port)
        pool_kwargs = {"server_hostname": target.host} if target.scheme == "https" else None
        return self._pools.connection_from_host(
            host=str(address), port=target.port, scheme=target.scheme, pool_kwargs=pool_kwargs
        )

    def pinned_address(self, host: str, port: int) -> IPAddress:
        """The checked address to connect to (cached for a while); raises UnsafeURL."""
        return self._pins.address(host, port)

    def forget(self, host: str, port: int) -> None:
        """Drop the cached address, so that the next request resolves the host again."""
        self._pins.forget(host, port)

    def close(self) -> None:
        self._pools.clear()

    def __enter__(self) -> OutboundSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_body(response: urllib3.BaseHTTPResponse, limit: int) -> tuple[bytes, bool | None]:
    """The first `limit` bytes of the body, and whether the body was read: True to its end,
    False when cut at the limit or broken off by the server (the connection is then closed
    instead of going back to the pool with unread data on it), None when the deadline
    passed first."""
    content = bytearray()
    complete: bool | None = False
    try:
        while len(content) <= limit:
            chunk = response.read1(64 * 1024, decode_content=True)
            if not chunk:
                complete = True
                break
            content += chunk
    except urllib3.exceptions.ReadTimeoutError:
        complete = None
    except (urllib3.exceptions.HTTPError, OSError):
        pass
    if not complete:
        response.close()
    return bytes(content[:limit]), complete


def _transport_error(exc: urllib3.exceptions.HTTPError, host: str, timeout: float) -> DeliveryError:
    # NewConnectionError is a ConnectTimeoutError for urllib3's backward compatibility.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        message = f"Could not connect to {host}: {_root_cause(exc)}."
    elif isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        message = f"Connecting to {host} timed out after {timeout:g} s."
    elif isinstance(exc, urllib3.exceptions.TimeoutError) or isinstance(
        _innermost(exc), TimeoutError
    ):
        message = (
            f"{host} did not complete the request within {timeout:g} s "
            "(the limit for the whole request)."
        )
    elif isinstance(exc, urllib3.exceptions.SSLError):
        message = f"The TLS connection to {host} failed: {_root_cause(exc)}."
    else:
        message = f"Could not connect to {host}: {_root_cause(exc)}."
    return DeliveryError(message, transient=True)


def _innermost(exc: BaseException) -> BaseException:
    """The innermost error behind urllib3's wrappers."""
    for _ in range(10):  # urllib3 wraps in .reason, __cause__ or args[0]
        wrapped = [getattr(exc, "reason", None), exc.__cause__, *exc.args]
        inner = next((e for e in wrapped if isinstance(e, BaseException)), None)
        if inner is None:
            break
        exc = inner
    return exc


def _root_cause(exc: BaseException) -> str:
    """The innermost error behind urllib3's wrappers, as a short text."""
    exc = _innermost(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.rstrip(".")
    return str(exc).rstrip(".") or type(exc).__name__
