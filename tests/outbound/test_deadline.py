"""The whole-request deadline: `timeout` bounds connect + send + the complete answer, against a
real loopback server that answers one byte at a time, never finishes, or never reads."""

from __future__ import annotations

import socket
import time

import pytest

from osmos.outbound.client import DeliveryError, OutboundSession
from tests.outbound.clients import client_fixture
from tests.outbound.drip import DripServer, drip, endless

# Every test runs against both clients (urllib3 and libcurl): the same contract.
Client = OutboundSession
client = client_fixture(__name__)

TIMEOUT = 1.0
# The machine is shared and loaded: the call must end near the deadline, not exactly on it.
MARGIN = 1.5


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def serve():
    servers: list[DripServer] = []

    def start(behaviour) -> DripServer:
        servers.append(DripServer(behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def timed_send(url: str, **overrides) -> tuple[float, DeliveryError | None]:
    arguments = {"headers": [], "body": b"{}", "idempotency_key": "k", "timeout": TIMEOUT}
    started = time.monotonic()
    with Client() as session:
        try:
            session.send("POST", url, **(arguments | overrides))
        except DeliveryError as exc:
            return time.monotonic() - started, exc
    return time.monotonic() - started, None


def assert_deadline_hit(elapsed: float, error: DeliveryError | None) -> None:
    assert error is not None, "a request that could not complete in time succeeded"
    assert elapsed < TIMEOUT + MARGIN, f"the request took {elapsed:.1f} s"
    assert error.transient is True
    assert f"within {TIMEOUT:g} s" in error.message
    assert "whole request" in error.message


def test_headers_sent_one_byte_at_a_time_are_cut_at_the_deadline(serve):
    server = serve(lambda conn: drip(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))

    assert_deadline_hit(*timed_send(server.url()))


def test_a_status_line_then_one_byte_per_interval_is_cut_at_the_deadline(serve):
    def answer(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        drip(conn, b"x" * 1000)

    assert_deadline_hit(*timed_send(serve(answer).url()))


def test_an_endless_chunked_body_sent_slowly_is_cut_at_the_deadline(serve):
    def answer(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            conn.sendall(b"1\r\nx\r\n")
            time.sleep(0.1)

    assert_deadline_hit(*timed_send(serve(answer).url()))


def test_an_answer_that_never_comes_is_cut_at_the_deadline(serve):
    assert_deadline_hit(*timed_send(serve(lambda conn: time.sleep(10)).url()))


def test_a_server_that_stops_reading_a_large_body_is_cut_at_the_deadline(serve):
    # The head is read, the body never: the socket buffers fill and sending blocks.
    assert_deadline_hit(
        *timed_send(serve(lambda conn: time.sleep(10)).url(), body=b"x" * 50_000_000)
    )


def test_an_endless_fast_body_stops_at_max_body_bytes_without_an_error(serve):
    def answer(conn):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\n\r\n"
        )  # no length: the body ends when the connection does
        endless_fast(conn)

    def endless_fast(conn: socket.socket) -> None:
        block = b"y" * 65536
        ends = time.monotonic() + 10
        while time.monotonic() < ends:
            conn.sendall(block)

    started = time.monotonic()
    with Client() as session:
        response = session.send(
            "POST",
            serve(answer).url(),
            headers=[],
            body=b"{}",
            idempotency_key="k",
            timeout=5,
            max_body_bytes=100_000,
        )
    assert time.monotonic() - started < 5
    assert response.body == b"y" * 100_000
    assert response.excerpt == "y" * 2048


def test_an_error_status_with_a_dripping_body_keeps_its_status(serve):
    def answer(conn):
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 100\r\n\r\nbad")
        endless(conn)

    elapsed, error = timed_send(serve(answer).url())

    assert error is not None
    assert elapsed < TIMEOUT + MARGIN
    assert error.status == 400
    assert error.transient is False
    assert error.response_excerpt.startswith("bad")
