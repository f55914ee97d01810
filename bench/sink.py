"""A fast HTTP sink for the delivery benchmarks: counts records and fails chosen ones.

Run: ``python -m bench.sink --port 8900``. It prints ``ready <port>`` once listening.

- Any request outside ``/_sink/`` is a delivery: its body (``Content-Length`` or chunked) is a
  JSON array of records or one record; each record's ``id`` is read. When a record's id is in
  the *fail set*, the whole request answers ``fail_status`` (default 422) and its records count
  as refused; otherwise ``200``. Bodies that are not JSON answer ``400``.
- ``GET /_sink/stats`` answers the counters as JSON; ``POST /_sink/reset`` with
  ``{"fail_ids": [...], "fail_status": 422, "track_ids": false}`` zeroes them and sets the fail
  set (``track_ids`` keeps the set of delivered ids, to count duplicates; costs memory).

Why not ``http.server``: one asyncio event loop with a hand-written HTTP/1.1 parser (keep-alive,
chunked bodies, pipelining) costs far less CPU per request than a thread per connection, and
the sink shares this 2-core machine with the product. ``TCP_NODELAY`` is set on every
connection (asyncio does it already; we make it explicit), otherwise small answers wait for
Nagle's algorithm and a one-record-per-request benchmark measures ~23 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

MAX_HEAD_BYTES = 64 * 1024


class _Rec(msgspec.Struct):
    """A record as the sink sees it: only its ``id`` (other fields are skipped unparsed); or
    an envelope (SPEC §3.2 body_template) whose ``events`` holds the records."""

    id: int | None = None
    events: list[_Rec] | None = None


_DECODE = msgspec.json.Decoder(list[_Rec] | _Rec).decode


@dataclass
class SinkState:
    """Counters since the last reset, and the ids whose requests must fail."""

    fail_ids: frozenset[int] = frozenset()
    fail_status: int = 422
    track_ids: bool = False
    requests: int = 0
    ok_requests: int = 0
    failed_requests: int = 0
    bad_requests: int = 0
    records_ok: int = 0
    records_refused: int = 0
    ok_id_sum: int = 0
    bytes_in: int = 0
    largest_body: int = 0
    first_at: float | None = None
    last_at: float | None = None
    delivered_ids: set[int] = field(default_factory=set)
    duplicates: int = 0

    def reset(self, *, fail_ids: list[int], fail_status: int, track_ids: bool) -> None:
        self.__init__(  # type: ignore[misc]  # every counter back to its default
            fail_ids=frozenset(fail_ids), fail_status=fail_status, track_ids=track_ids
        )

    def snapshot(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("fail_ids", "delivered_ids")}
        data["fail_ids"] = len(self.fail_ids)
        data["distinct_ids"] = len(self.delivered_ids) if self.track_ids else None
        return data

    def deliver(self, body: bytes) -> tuple[int, bytes]:
        """Account for one delivery body; the status and JSON answer to give."""
        now = time.monotonic()
        self.first_at = self.first_at or now
        self.last_at = now
        self.requests += 1
        self.bytes_in += len(body)
        self.largest_body = max(self.largest_body, len(body))
        try:
            decoded = _DECODE(body)
        except (msgspec.DecodeError, RecursionError):
            self.bad_requests += 1
            return 400, b'{"detail":"body is not a JSON record or array of records"}'
        records = decoded if isinstance(decoded, list) else [decoded]
        if len(records) == 1 and records[0].events is not None:
            records = records[0].events
        ids = [record.id for record in records]
        bad = [i for i in ids if i in self.fail_ids] if self.fail_ids else []
        if bad:
            self.failed_requests += 1
            self.records_refused += len(records)
            answer = {"detail": "records refused", "bad_ids": bad[:100], "bad_count": len(bad)}
            return self.fail_status, orjson.dumps(answer)
        self.ok_requests += 1
        self.records_ok += len(records)
        self.ok_id_sum += sum(i for i in ids if i is not None)
        if self.track_ids:
            before = len(self.delivered_ids)
            self.delivered_ids.update(i for i in ids if i is not None)
            self.duplicates += len(records) - (len(self.delivered_ids) - before)
        return 200, b'{"ok":true,"records":%d}' % len(records)

    def control(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if method == "GET" and path == "/_sink/stats":
            return 200, orjson.dumps(self.snapshot())
        if method == "POST" and path == "/_sink/reset":
            options = orjson.loads(body or b"{}")
            self.reset(
                fail_ids=[int(i) for i in options.get("fail_ids", [])],
                fail_status=int(options.get("fail_status", 422)),
                track_ids=bool(options.get("track_ids", False)),
            )
            return 200, b'{"reset":true}'
        return 404, b'{"detail":"unknown control path"}'


_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 422: b"Unprocessable Entity"}


class SinkProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: parses requests as bytes arrive, answers each in order."""

    def __init__(self, state: SinkState):
        self.state = state
        self.buf = bytearray()
        self.phase = "head"
        self.need = 0
        self.parts: list[bytes] = []
        self.method = self.path = ""
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            while self._step():
                pass
        except ValueError:
            self._answer(400, b'{"detail":"malformed HTTP request"}', close=True)

    def _step(self) -> bool:
        """Consume what the buffer allows of the current phase; False when it needs more."""
        buf = self.buf
        if self.phase == "head":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise ValueError("head too large")
                return False
            self._head(bytes(buf[:end]))
            del buf[: end + 4]
            return True
        if self.phase == "body":
            if len(buf) < self.need:
                return False
            body = bytes(buf[: self.need])
            del buf[: self.need]
            self._request(body)
            return True
        if self.phase == "chunk-size":
            end = buf.find(b"\r\n")
            if end < 0:
                return False
            size = int(bytes(buf[:end]).split(b";")[0], 16)
            del buf[: end + 2]
            self.phase, self.need = ("trailer", 0) if size == 0 else ("chunk-data", size)
            return True
        if self.phase == "chunk-data":
            if len(buf) < self.need + 2:
                return False
            self.parts.append(bytes(buf[: self.need]))
            del buf[: self.need + 2]
            self.phase = "chunk-size"
            return True
        # trailer: header lines until an empty one
        end = buf.find(b"\r\n")
        if end < 0:
            return False
        line = bytes(buf[:end])
        del buf[: end + 2]
        if not line:
            body, self.parts = b"".join(self.parts), []
            self._request(body)
        return True

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        method, path, version = lines[0].decode("latin-1").split(" ")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        self.method, self.path = method, path
        connection = headers.get(b"connection", b"")
        self.close_after = connection == b"close" or (
            version == "HTTP/1.0" and connection != b"keep-alive"
        )
        if headers.get(b"expect") == b"100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if b"chunked" in headers.get(b"transfer-encoding", b""):
            self.phase, self.parts = "chunk-size", []
        else:
            self.phase, self.need = "body", int(headers.get(b"content-length", b"0"))

    def _request(self, body: bytes) -> None:
        self.phase = "head"
        if self.path.startswith("/_sink/"):
            status, answer = self.state.control(self.method, self.path, body)
        else:
            status, answer = self.state.deliver(body)
        self._answer(status, answer, close=self.close_after)

    def _answer(self, status: int, body: bytes, *, close: bool) -> None:
        reason = _REASONS.get(status, b"Status")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (status, reason, len(body), b"Connection: close\r\n" if close else b"", body)
        )
        if close:
            self.phase = "closed"
            self.transport.close()


async def _serve(host: str, port: int, state: SinkState, ready: Callable[[int], None]) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SinkProtocol(state), host, port, backlog=1024, reuse_address=True
    )
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def serve_in_thread(host: str = "127.0.0.1", port: int = 0) -> tuple[int, SinkState]:
    """Start a sink on a daemon thread (tests); returns its port and its live state."""
    state = SinkState()
    started = threading.Event()
    bound: list[int] = []

    def ready(actual: int) -> None:
        bound.append(actual)
        started.set()

    thread = threading.Thread(
        target=lambda: asyncio.run(_serve(host, port, state, ready)), daemon=True
    )
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the sink did not start")
    return bound[0], state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    args = parser.parse_args()
    asyncio.run(
        _serve(args.host, args.port, SinkState(), lambda p: print(f"ready {p}", flush=True))
    )


if __name__ == "__main__":
    main()
