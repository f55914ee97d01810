"""A customer's API on loopback that records every request and misbehaves on demand.

``sink.behave`` is called with each request and returns what to do: ``Answer(status,
body, delay)`` (the delay is spent before answering, to go past the client's timeout) or
``DROP`` (close the connection without a response). The default answers 200.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class SinkRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"{}"
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


DROP = "drop"
Behaviour = Callable[[SinkRequest], "Answer | str"]


@dataclass
class _State:
    behave: Behaviour
    requests: list[SinkRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        state: _State = self.server.state  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        request = SinkRequest(
            self.command,
            self.path,
            dict(self.headers.items()),
            self.rfile.read(length),
            time.monotonic(),
        )
        with state.lock:
            state.requests.append(request)
        action = state.behave(request)
        if action == DROP:
            # RST instead of FIN: the client sees a connection reset, not an empty answer.
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            self.close_connection = True
            return
        if action.delay:
            time.sleep(action.delay)
        try:
            self.send_response(action.status)
            for name, value in action.headers:
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(action.body)))
            self.end_headers()
            self.wfile.write(action.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timeout): fine

    do_POST = do_PUT = do_PATCH = _handle

    def log_message(self, format, *args) -> None:
        pass


class LoopbackSink:
    """``with LoopbackSink() as sink: … sink.url … sink.requests``."""

    def __init__(self, behave: Behaviour | None = None):
        self._state = _State(behave=behave or (lambda _r: Answer()))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.state = self._state  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

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

    def __enter__(self) -> LoopbackSink:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
