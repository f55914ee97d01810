"""What only the libcurl client does: many requests at once from one thread, each with its
own deadline, and its own checks of where libcurl connects. (The contract it shares with the
urllib3 client is in test_client.py, test_deadline.py and test_response.py, run against both.)
"""

from __future__ import annotations

import socket
import time

import pytest

from osmos.outbound.client import DeliveryError, Response
from osmos.outbound.curl import CurlSession
from tests.outbound.drip import DripServer, drip
from tests.outbound.test_client import RecordingServer, resolver_answering, start


@pytest.fixture
def server(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    srv = start(RecordingServer(("127.0.0.1", 0)))
    yield srv
    srv.shutdown()
    srv.server_close()


def _start(session, url, tag, timeout=5.0, **overrides):
    arguments = {"headers": [], "body": b"{}", "idempotency_key": f"key-{tag}", "timeout": timeout}
    session.start("POST", url, tag=tag, **(arguments | overrides))


def _until_done(session, count, limit=10.0):
    results, ended = {}, time.monotonic() + limit
    while len(results) < count and time.monotonic() < ended:
        for tag, result in session.poll(0.5):
            results[tag] = (result, time.monotonic())
    return results


def test_many_requests_in_flight_each_get_their_own_answer(server):
    with CurlSession(pool_size=4) as session:
        for n in range(20):
            body = f'{{"n":{n}}}'.encode()
            _start(session, server.url(f"/status/201?body=answer-{n}"), n, body=body)
        assert session.in_flight == 20
        results = _until_done(session, 20)

    assert sorted(results) == list(range(20))
    for n, (result, _) in results.items():
        assert isinstance(result, Response)
        assert (result.status, result.body) == (201, f"answer-{n}".encode())
    by_key = {r.header("Idempotency-Key"): r.body for r in server.received}
    assert by_key == {f"key-{n}": f'{{"n":{n}}}'.encode() for n in range(20)}


def test_connections_are_kept_alive_up_to_pool_size(server):
    with CurlSession(pool_size=4) as session:
        for wave in range(5):
            for n in range(4):
                _start(session, server.url(), (wave, n))
            assert len(_until_done(session, 4)) == 4

    assert len(server.received) == 20
    assert len({r.client_port for r in server.received}) == 4


def test_a_dripping_destination_holds_back_neither_the_others_nor_its_deadline(server):
    dripping = DripServer(
        lambda conn: drip(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    )
    try:
        with CurlSession() as session:
            started = time.monotonic()
            _start(session, dripping.url(), "slow", timeout=1.0)
            for n in range(5):
                _start(session, server.url(), n)
            results = _until_done(session, 6)
    finally:
        dripping.close()

    fast = [results[n] for n in range(5)]
    assert all(isinstance(result, Response) for result, _ in fast)
    assert max(at for _, at in fast) - started < 0.9  # not behind the dripping one
    error, at = results["slow"]
    assert isinstance(error, DeliveryError)
    assert error.transient
    assert "within 1 s" in error.message
    assert at - started < 2.5


def test_libcurl_may_connect_only_to_the_checked_address(server, monkeypatch):
    # The guard checks 127.0.0.2 (allowed); were libcurl told (or to decide) to connect to
    # another address, the socket opener refuses it before any connection is made.
    session = CurlSession(resolver=resolver_answering("127.0.0.2"))
    monkeypatch.setattr(
        session,
        "_resolve_entries",
        lambda target, address: [f"pinned.test:{target.port}:127.0.0.1"],
    )
    with session, pytest.raises(DeliveryError) as caught:
        session.send(
            "POST",
            server.url(host="pinned.test"),
            headers=[],
            body=b"{}",
            idempotency_key="k",
            timeout=5,
        )

    assert caught.value.transient is True
    assert "Could not connect to pinned.test" in caught.value.message
    assert server.connections == 0


def test_proxies_from_the_environment_are_never_used(server, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{closed_port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)

    with CurlSession() as session:
        response = session.send(
            "POST", server.url(), headers=[], body=b"{}", idempotency_key="k", timeout=5
        )

    assert response.status == 200
    assert len(server.received) == 1


def test_an_error_answer_comes_back_without_a_traceback(server):
    # A result kept by the caller: a traceback would keep the caller's frames (and what
    # they hold, e.g. an open database cursor) alive until the cycle collector runs.
    with CurlSession(pool_size=1) as session:
        _start(session, server.url("/status/503"), "busy")
        ((result, _),) = _until_done(session, 1).values()

    assert isinstance(result, DeliveryError)
    assert (result.status, result.transient) == (503, True)
    assert result.__traceback__ is None
