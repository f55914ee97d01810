"""One libcurl transfer of `osmos.outbound.curl`: what it collects while in flight (the
answer's head and body, capped), the socket opener that only connects to the checked
address, and how a failed transfer becomes a `DeliveryError` (as the urllib3 client words
it)."""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import IO

import pycurl

from osmos.outbound.answers import DeliveryError, timed_out
from osmos.outbound.target import Target

logger = logging.getLogger("osmos.outbound.curl")

_TLS_ERRORS = frozenset(
    code
    for name in (
        "E_SSL_CONNECT_ERROR",
        "E_PEER_FAILED_VERIFICATION",
        "E_SSL_CACERT",
        "E_SSL_CERTPROBLEM",
        "E_SSL_CIPHER",
        "E_SSL_CACERT_BADFILE",
        "E_SSL_ISSUER_ERROR",
        "E_SSL_PINNEDPUBKEYNOTMATCH",
        "E_SSL_INVALIDCERTSTATUS",
        "E_SSL_SHUTDOWN_FAILED",
        "E_SSL_CRL_BADFILE",
        "E_USE_SSL_FAILED",
        "E_SSL_ENGINE_INITFAILED",
    )
    if (code := getattr(pycurl, name, None)) is not None
)


class Transfer:
    """One request in flight: what is needed to turn its end into a result."""

    __slots__ = (
        "address",
        "body",
        "cut",
        "file",
        "head_done",
        "headers",
        "limit",
        "reason",
        "secrets",
        "started",
        "status",
        "tag",
        "target",
        "timeout",
    )

    def __init__(self, tag, target, address, timeout, limit, secrets, file) -> None:
        self.tag = tag
        self.target: Target = target
        self.address: str = address
        self.timeout: float = timeout
        self.limit: int = limit
        self.secrets: list[str] = secrets
        self.started = time.monotonic()
        self.status: int | None = None
        self.reason = ""
        self.headers: dict[str, str] = {}
        self.head_done = False
        self.body = bytearray()
        self.cut = False
        self.file: IO[bytes] | None = file

    def header_line(self, line: bytes) -> None:
        if line.startswith(b"HTTP/"):  # a status line (a 1xx answer's head comes first)
            parts = line.decode("latin-1").split(None, 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
            self.reason = parts[2].strip() if len(parts) > 2 else ""
            self.headers = {}
            self.head_done = False
            return
        if line in (b"\r\n", b"\n"):
            self.head_done = self.status is not None and self.status >= 200
            return
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            return
        name, value = name.strip().lower(), value.strip()
        seen = self.headers.get(name)
        self.headers[name] = value if seen is None else f"{seen}, {value}"

    def write(self, data: bytes) -> int | None:
        body = self.body
        body += data
        if len(body) > self.limit:
            self.cut = True
            return 0  # stops the transfer (E_WRITE_ERROR); its connection is closed
        return None


def transfer_opener(transfer: Transfer):
    """libcurl's socket opener for one request: only the checked address may be connected."""

    def open_socket(purpose: int, address) -> socket.socket | int:
        family, socktype, protocol, sockaddr = address
        if sockaddr[0] != transfer.address:
            logger.warning(
                "refused a connection to %s: not the checked address of %s",
                sockaddr[0],
                transfer.target.host,
            )
            return pycurl.SOCKET_BAD
        return socket.socket(family, socktype, protocol)

    return open_socket


def transport_error(
    handle: pycurl.Curl, code: int, message: str, transfer: Transfer
) -> DeliveryError:
    host, timeout = transfer.target.host, transfer.timeout
    if code == pycurl.E_OPERATION_TIMEDOUT:
        if handle.getinfo(pycurl.CONNECT_TIME) == 0:
            return DeliveryError(
                f"Connecting to {host} timed out after {timeout:g} s.", transient=True
            )
        return timed_out(host, timeout)
    if code in _TLS_ERRORS:
        return DeliveryError(
            f"The TLS connection to {host} failed: {_short(message)}.", transient=True
        )
    if code == pycurl.E_COULDNT_CONNECT:
        number = handle.getinfo(pycurl.OS_ERRNO)
        cause = os.strerror(number) if number else _short(message)
        return DeliveryError(f"Could not connect to {host}: {cause}.", transient=True)
    return DeliveryError(f"Could not connect to {host}: {_short(message)}.", transient=True)


def _short(message: str) -> str:
    return message.rstrip(".") or "unknown error"
