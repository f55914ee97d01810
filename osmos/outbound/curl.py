"""Many requests at once from one thread: libcurl's multi interface (pycurl).

`CurlSession` keeps every guarantee of `osmos.outbound.client.OutboundSession.send` (the
same `Response` / `DeliveryError`, from `osmos.outbound.answers`), for a fraction of its CPU:
the HTTP work is libcurl's C code, and no thread is needed per request in flight. Single-mode
delivery (`pipelines.senders.SingleSender`) sends through it; `send` is the one-request form
with `OutboundSession.send`'s signature (the client tests run against both).

- **Whole-request deadline**: `CURLOPT_TIMEOUT_MS` bounds connecting, the TLS handshake,
  sending and receiving the complete answer, whatever the server does (a drip, an endless
  body, a server that stops reading).
- **Address guard and pinning**: the host is resolved and every answer checked
  (`osmos.outbound.target.Pins`) for each request; libcurl is handed that address
  (`CURLOPT_RESOLVE`), and every socket it opens is checked against it
  (`CURLOPT_OPENSOCKETFUNCTION`: any other address is refused before connecting). `Host`, TLS
  SNI and certificate verification use the URL's host name. Proxies from the environment,
  .netrc and cookies are never used; only http and https.
- **No redirects** (libcurl's default, set anyway); a 3xx is a permanent failure.
- **Size cap**: at most `max_body_bytes` of an answer are kept; past that the transfer is
  stopped and its connection closed.
- **Headers, signing**: the same checked headers, `Idempotency-Key`, `User-Agent` and
  Standard Webhooks signature as the urllib3 client (`osmos.outbound.target`).

A session is used by one thread at a time (the one that calls `start`/`poll`); its
connections are kept alive across requests, at most `pool_size` of them.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import math
import select
import socket
import time
from collections.abc import Hashable, Sequence
from typing import IO

import certifi
import pycurl

from osmos.outbound.answers import (
    DEFAULT_MAX_BODY_BYTES,
    DeliveryError,
    Response,
    answer,
)
from osmos.outbound.curl_transfer import Transfer, transfer_opener, transport_error
from osmos.outbound.target import (
    DEFAULT_DNS_CACHE_SECONDS,
    Pins,
    Target,
    body_length,
    checked_target,
    request_headers,
    sign,
)
from osmos.outbound.urlguard import IPAddress, Resolver, UnresolvableHost, UnsafeURL

logger = logging.getLogger(__name__)

# libcurl adds these unless told not to; the urllib3 client sends neither.
_SUPPRESSED = ["Expect:", "Accept:"]
# After the answer's head: the body was cut at the limit (our write callback refused more)
# or broken off by the server; the answer stands on its status (as in the urllib3 client).
_BODY_CUT = frozenset((pycurl.E_WRITE_ERROR, pycurl.E_PARTIAL_FILE, pycurl.E_RECV_ERROR))


class CurlSession:
    """Sends requests to customer destinations, many at once, from the calling thread.

    `start` a request (with a `tag` of your choosing), then `poll` for finished ones:
    `(tag, Response | DeliveryError)`. `resolver`, `dns_cache_seconds`, `ca_bundle` and
    `pool_size` as for `OutboundSession`.
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
        self._ca_bundle = ca_bundle or certifi.where()
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_MAXCONNECTS, max(1, pool_size))
        self._free: list[pycurl.Curl] = []
        self._active: dict[pycurl.Curl, Transfer] = {}
        self._resolved: dict[tuple[str, int, IPAddress], list[str]] = {}

    # -- public -----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._active)

    def start(
        self,
        method: str,
        url: str,
        *,
        headers: list[tuple[str, str]],
        body: bytes | IO[bytes],
        idempotency_key: str,
        timeout: float,
        tag: Hashable = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        signing_secrets: Sequence[str] = (),
    ) -> None:
        """Start one request (arguments as for `OutboundSession.send`); its result comes from
        `poll` with `tag`. Raises DeliveryError at once when it cannot be sent (a refused URL
        or address, a host without an address, an invalid header) and ValueError for a
        timeout that is not a positive number."""
        if not 0 < timeout < math.inf:
            raise ValueError("timeout must be a positive number of seconds")
        target = checked_target(url)
        secrets = [value for _name, value in headers]
        headers_out = request_headers(headers, idempotency_key)
        sign(
            headers_out, idempotency_key=idempotency_key, body=body, signing_secrets=signing_secrets
        )
        try:
            address = self._pins.address(target.host, target.port)
        except UnsafeURL as exc:  # a host without an address today may have one tomorrow
            raise DeliveryError(str(exc), transient=isinstance(exc, UnresolvableHost)) from None
        handle = self._handle(file=not isinstance(body, bytes))
        transfer = Transfer(
            tag,
            target,
            str(address),
            timeout,
            max_body_bytes,
            secrets,
            None if isinstance(body, bytes) else body,
        )
        setopt = handle.setopt
        setopt(pycurl.URL, url)
        setopt(pycurl.RESOLVE, self._resolve_entries(target, address))
        setopt(pycurl.CUSTOMREQUEST, method.upper())
        setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in headers_out.items()] + _SUPPRESSED)
        setopt(pycurl.TIMEOUT_MS, max(1, math.ceil(timeout * 1000)))
        setopt(pycurl.CONNECTTIMEOUT_MS, max(1, math.ceil(timeout * 1000)))
        setopt(pycurl.HEADERFUNCTION, transfer.header_line)
        setopt(pycurl.WRITEFUNCTION, transfer.write)
        setopt(pycurl.OPENSOCKETFUNCTION, transfer_opener(transfer))
        if isinstance(body, bytes):
            setopt(pycurl.POSTFIELDSIZE_LARGE, len(body))
            setopt(pycurl.POSTFIELDS, body)
        else:
            setopt(pycurl.POSTFIELDSIZE_LARGE, body_length(body))
            setopt(pycurl.READFUNCTION, body.read)
        self._active[handle] = transfer
        self._multi.add_handle(handle)

    def poll(self, timeout: float) -> list[tuple[Hashable, Response | DeliveryError]]:
        """Let the requests in flight progress for at most `timeout` seconds (less once one
        has ended) and return the ones that ended."""
        multi = self._multi
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        done = self._collect()
        if done or not self._active:
            return done
        wanted = multi.timeout()  # ms until libcurl must be called again (-1: no timer)
        wait = timeout if wanted < 0 else min(timeout, wanted / 1000)
        if wait > 0:
            self._wait(wait)
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        return self._collect()

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
        """One request, as `OutboundSession.send`: the 2xx answer, or raise DeliveryError."""
        tag = object()
        self.start(
            method,
            url,
            headers=headers,
            body=body,
            idempotency_key=idempotency_key,
            timeout=timeout,
            tag=tag,
            max_body_bytes=max_body_bytes,
            signing_secrets=signing_secrets,
        )
        while True:
            for done_tag, result in self.poll(1.0):
                if done_tag is tag:
                    if isinstance(result, DeliveryError):
                        raise result
                    return result

    def pinned_address(self, host: str, port: int) -> IPAddress:
        return self._pins.address(host, port)

    def forget(self, host: str, port: int) -> None:
        self._pins.forget(host, port)

    def close(self) -> None:
        for handle in list(self._active):
            self._multi.remove_handle(handle)
            handle.close()
        self._active.clear()
        for handle in self._free:
            handle.close()
        self._free.clear()
        self._multi.close()

    def __enter__(self) -> CurlSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _handle(self, *, file: bool) -> pycurl.Curl:
        # A file body uses a fresh handle: POSTFIELDS, once set, would shadow its reader.
        if self._free and not file:
            return self._free.pop()
        handle = pycurl.Curl()
        setopt = handle.setopt
        setopt(pycurl.NOSIGNAL, 1)
        setopt(pycurl.POST, 1)
        setopt(pycurl.FOLLOWLOCATION, 0)
        setopt(pycurl.MAXREDIRS, 0)
        setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        setopt(pycurl.REDIR_PROTOCOLS, 0)
        setopt(pycurl.PROXY, "")  # never a proxy from the environment
        setopt(pycurl.NOPROXY, "*")
        setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        setopt(pycurl.SSL_VERIFYPEER, 1)
        setopt(pycurl.SSL_VERIFYHOST, 2)
        setopt(pycurl.CAINFO, self._ca_bundle)
        setopt(pycurl.TCP_NODELAY, 1)
        setopt(pycurl.DNS_CACHE_TIMEOUT, 0)  # only the pinned addresses (CURLOPT_RESOLVE)
        return handle

    def _resolve_entries(self, target: Target, address: IPAddress) -> list[str]:
        key = (target.host, target.port, address)
        entries = self._resolved.get(key)
        if entries is None:
            host = target.host
            if _is_literal(host):  # libcurl does not resolve an address; the opener checks it
                entries = []
            else:
                shown = f"[{address}]" if address.version == 6 else str(address)
                # Replace what libcurl remembers for this host with the address just checked.
                entries = [f"-{host}:{target.port}", f"{host}:{target.port}:{shown}"]
            if len(self._resolved) > 1024:
                self._resolved.clear()
            self._resolved[key] = entries
        return entries

    def _wait(self, seconds: float) -> None:
        read, write, error = self._multi.fdset()
        if read or write or error:
            # A descriptor closed meanwhile (OSError, ValueError): just go on.
            with contextlib.suppress(OSError, ValueError):
                select.select(read, write, error, seconds)
        else:
            time.sleep(min(seconds, 0.01))

    def _collect(self) -> list[tuple[Hashable, Response | DeliveryError]]:
        done: list[tuple[Hashable, Response | DeliveryError]] = []
        while True:
            queued, finished, failed = self._multi.info_read()
            for handle in finished:
                done.append(self._finish(handle, 0, ""))
            for handle, code, message in failed:
                done.append(self._finish(handle, code, message))
            if not queued:
                return done

    def _finish(
        self, handle: pycurl.Curl, code: int, message: str
    ) -> tuple[Hashable, Response | DeliveryError]:
        transfer = self._active.pop(handle)
        self._multi.remove_handle(handle)
        try:
            result = self._result(handle, transfer, code, message)
        finally:
            if transfer.file is None and len(self._free) < 64:
                self._free.append(handle)
            else:
                handle.close()
        return transfer.tag, result

    def _result(
        self, handle: pycurl.Curl, transfer: Transfer, code: int, message: str
    ) -> Response | DeliveryError:
        elapsed = time.monotonic() - transfer.started
        target = transfer.target
        if transfer.head_done and transfer.status is not None:
            if code == 0 or code in _BODY_CUT:
                complete: bool | None = code == 0 and not transfer.cut
            elif code == pycurl.E_OPERATION_TIMEDOUT:
                complete = None
            else:
                complete = False
            if code and code != pycurl.E_WRITE_ERROR:
                self._pins.forget(target.host, target.port)
            # Host only: paths and queries may carry tokens too.
            logger.debug("%s answered %s in %.3f s", target.host, transfer.status, elapsed)
            try:
                return answer(
                    host=target.host,
                    status=transfer.status,
                    reason=transfer.reason,
                    headers=transfer.headers,
                    content=bytes(transfer.body[: transfer.limit]),
                    complete=complete,
                    secrets=transfer.secrets,
                    timeout=transfer.timeout,
                    elapsed=elapsed,
                )
            except DeliveryError as exc:
                # A result, not a raised error: its traceback would keep every frame of the
                # caller's stack (and their locals) alive until the cycle collector runs.
                return exc.with_traceback(None)
        self._pins.forget(target.host, target.port)
        return transport_error(handle, code, message, transfer)


@functools.lru_cache(maxsize=256)
def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
