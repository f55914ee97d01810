"""A loopback server that misbehaves on purpose: it answers as slowly as a hostile API can."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable


class DripServer:
    """Accepts connections on 127.0.0.1; each connection reads the request head, then runs
    `behaviour(conn)` (which writes the answer, as slowly as it likes) until the client leaves."""

    def __init__(self, behaviour: Callable[[socket.socket], None]) -> None:
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                self.behaviour(conn)
            except OSError:
                pass  # the client gave up: expected

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


def drip(conn: socket.socket, data: bytes, *, every: float = 0.2, stop: float = 30) -> None:
    """Send `data` one byte at a time, `every` seconds apart (at most `stop` seconds)."""
    ends = time.monotonic() + stop
    for byte in data:
        if time.monotonic() > ends:
            return
        conn.sendall(bytes([byte]))
        time.sleep(every)


def endless(conn: socket.socket, *, every: float = 0.2, stop: float = 30) -> None:
    ends = time.monotonic() + stop
    while time.monotonic() < ends:
        conn.sendall(b"x")
        time.sleep(every)
