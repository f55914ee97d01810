"""The customer's API on loopback: records every request and misbehaves on demand.

One ``ThreadingHTTPServer`` on ``127.0.0.1:0``. ``sink.behave`` is called with each request
and returns what to do:

- ``Answer(status, body, headers, delay)``: answer (after ``delay`` seconds);
- ``DROP``: close the connection without a response (a reset);
- ``Drip(status, body, interval)``: send the status line and headers, then the body one
  byte every ``interval`` seconds (a server that never quite finishes).

Behaviours are plain functions; the factories below build the common ones and combine
(``for_seconds(5, status(503), then=ok)``). ``sink.refuse_for(seconds)`` stops listening
(connection refused) and listens again on the same port afterwards.

Every request is kept (``sink.requests``: time, method, path, headers, body, client port, the
status answered); ``sink.records()`` gives the records of every request, ``sink.accepted()``
the requests answered 2xx and ``sink.accepted_records()`` their records, counting a repeat of
an accepted ``Idempotency-Key`` once (a receiver that deduplicates). ``sink.clear()`` forgets
what was received; ``sink.close()`` stops listening for good (connection refused).

The ``sink`` fixtures of the suites wrap this class; it is the only loopback sink of the tests.

    with Sink() as sink:
        sink.behave = for_seconds(3, status(503), then=ok)
        ... sink.url ...
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SinkRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived
    client_port: int = 0
    answered: int | None = None  # the status sent (None: dropped)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)

    def records(self) -> list[dict]:
        """The records of the body (an array, or one object)."""
        body = self.json()
        return body if isinstance(body, list) else [body]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0


@dataclass(frozen=True)
class Drip:
    status: int = 200
    body: bytes = b'{"ok": true}'
    interval: float = 1.0


DROP = "drop"
Action = Answer | Drip | str
Behaviour = Callable[[SinkRequest], Action]


# --- behaviours ---------------------------------------------------------------------------------


def ok(_request: SinkRequest | None = None) -> Answer:
    return Answer()


def status(code: int, *, body: bytes = b'{"error": "unavailable"}', **headers: str) -> Behaviour:
    """Always answer ``code`` (headers by keyword: ``retry_after="3"`` → ``Retry-After: 3``)."""
    pairs = tuple((name.replace("_", "-").title(), value) for name, value in headers.items())
    return lambda _request: Answer(code, body, pairs)


def for_seconds(seconds: float, during: Behaviour, *, then: Behaviour = ok) -> Behaviour:
    """``during`` for ``seconds`` from the first request, then ``then`` (a flap, an outage)."""
    started: list[float] = []
    lock = threading.Lock()

    def behave(request: SinkRequest) -> Action:
        with lock:
            if not started:
                started.append(request.at)
        return during(request) if request.at - started[0] < seconds else then(request)

    return behave


def first(count: int, during: Behaviour, *, then: Behaviour = ok) -> Behaviour:
    """``during`` for the first ``count`` requests, then ``then``."""
    seen = [0]
    lock = threading.Lock()

    def behave(request: SinkRequest) -> Action:
        with lock:
            seen[0] += 1
            n = seen[0]
        return during(request) if n <= count else then(request)

    return behave


def fail_ids(ids: Iterable[int], *, code: int = 422, otherwise: Behaviour = ok) -> Behaviour:
    """``code`` for a request that holds a record whose ``id`` is in ``ids``."""
    bad = set(ids)

    def behave(request: SinkRequest) -> Action:
        if any(record.get("id") in bad for record in request.records()):
            return Answer(code, b'{"error": "bad record"}')
        return otherwise(request)

    return behave


def reject_ids(ids: Iterable[int], *, code: int = 200, reason: str = "refused") -> Behaviour:
    """A per-record answer (SPEC §5.3): ``{"rejected": [{"index", "reason"}]}`` naming the
    records of the request whose ``id`` is in ``ids``."""
    bad = set(ids)

    def behave(request: SinkRequest) -> Action:
        rejected = [
            {"index": index, "reason": f"{reason} {record.get('id')}"}
            for index, record in enumerate(request.records())
            if record.get("id") in bad
        ]
        return Answer(code, json.dumps({"rejected": rejected}).encode())

    return behave


def reject_containing(text: str, *, code: int = 422, otherwise: Behaviour = ok) -> Behaviour:
    """``code`` for a request whose body contains ``text`` (an API that refuses some emails)."""
    needle = text.encode()

    def behave(request: SinkRequest) -> Action:
        if needle in request.body:
            return Answer(code, b'{"error": "email is not accepted"}')
        return otherwise(request)

    return behave


def drip(*, interval: float = 1.0, body: bytes = b'{"ok": true}') -> Behaviour:
    return lambda _request: Drip(200, body, interval)


def drop(_request: SinkRequest) -> str:
    return DROP


# --- the server ---------------------------------------------------------------------------------


@dataclass
class _State:
    behave: Behaviour
    requests: list[SinkRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refusing: threading.Event = field(default_factory=threading.Event)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _handle(self) -> None:
        state: _State = self.server.state  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        request = SinkRequest(
            self.command,
            self.path,
            dict(self.headers.items()),
            self.rfile.read(length),
            time.monotonic(),
            self.client_address[1],
        )
        with state.lock:
            state.requests.append(request)
        action = DROP if state.refusing.is_set() else state.behave(request)
        try:
            if action == DROP:
                self._reset()
            elif isinstance(action, Drip):
                request.answered = action.status
                self._drip(action)
            else:
                request.answered = action.status
                self._answer(action)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its deadline): fine

    def _reset(self) -> None:
        # RST instead of FIN: the client sees a connection reset, not an empty answer.
        self.connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        self.close_connection = True

    def _answer(self, action: Answer) -> None:
        if action.delay:
            time.sleep(action.delay)
        self.send_response(action.status)
        for name, value in action.headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(action.body)))
        self.end_headers()
        self.wfile.write(action.body)

    def _drip(self, action: Drip) -> None:
        self.send_response(action.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(action.body)))
        self.end_headers()
        self.wfile.flush()
        for byte in action.body:
            time.sleep(action.interval)
            self.wfile.write(bytes([byte]))
            self.wfile.flush()

    do_POST = do_PUT = do_PATCH = _handle

    def log_message(self, format, *args) -> None:
        pass


class Sink:
    """``with Sink() as sink: … sink.url … sink.requests``; see the module docstring."""

    def __init__(self, behave: Behaviour | None = None, *, path: str = "/hook") -> None:
        self._state = _State(behave=behave or ok)
        self._path = path
        self._server = self._listen(0)
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def _listen(self, port: int) -> http.server.ThreadingHTTPServer:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        server.daemon_threads = True
        server.state = self._state  # type: ignore[attr-defined]
        return server

    def _serve(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self._path}"

    @property
    def behave(self) -> Behaviour:
        return self._state.behave

    @behave.setter
    def behave(self, value: Behaviour) -> None:
        self._state.behave = value

    @property
    def requests(self) -> list[SinkRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def refuse_for(self, seconds: float) -> None:
        """Stop listening now (new connections are refused; requests on open keep-alive
        connections are reset) and listen again on the same port after ``seconds``."""
        self._state.refusing.set()
        self._stop()

        def back() -> None:
            time.sleep(seconds)
            deadline = time.monotonic() + 5
            while True:
                try:
                    self._server = self._listen(self.port)
                    break
                except OSError:  # the port is still being released
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            self._state.refusing.clear()
            self._serve()

        threading.Thread(target=back, daemon=True).start()

    def records(self) -> list[dict]:
        """The records of every request received, in order (arrays flattened)."""
        return [record for request in self.requests for record in request.records()]

    def accepted(self) -> list[SinkRequest]:
        """The requests answered 2xx, in order."""
        return [r for r in self.requests if r.answered is not None and 200 <= r.answered < 300]

    def clear(self) -> None:
        """Forget every request received so far."""
        with self._state.lock:
            self._state.requests.clear()

    def close(self) -> None:
        """Stop listening for good: connecting is refused from now on."""
        self._stop()

    def accepted_records(self) -> list[dict]:
        """The records of every request answered 2xx, a repeated accepted Idempotency-Key
        counted once."""
        seen: set[str | None] = set()
        out: list[dict] = []
        for request in self.accepted():
            key = request.header("Idempotency-Key")
            if key is not None and key in seen:
                continue
            seen.add(key)
            out.extend(request.records())
        return out

    def __enter__(self) -> Sink:
        self._serve()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()
