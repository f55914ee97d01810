"""Chunked ingest bodies (SPEC §4) through real clients over real sockets, on the servers osmos
runs under: gunicorn (production) and waitress (``run_embedded``), each serving the test
database. Django's test client never chunks and its development server cannot read a chunked
body (it answers 411: ``tests/ingest/test_live.py``).

- gunicorn decodes the chunks and hands the stream over (``wsgi.input_terminated``): osmos
  reads it in steps and answers 413 as soon as the body passes ``INGEST_MAX_BODY_BYTES``, while
  the client is still sending (a body that never ends gets its 413 too).
- waitress decodes and buffers the body itself (to a temporary file past 512 KB, not memory)
  and passes a ``Content-Length``: the ordinary path, the same limits.
"""

from __future__ import annotations

import contextlib
import gzip
import select
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests
import waitress
from django.db import connections

from ingest.models import Record
from tests.reliability.processes import Children, child_env, free_port, wait_for
from tests.support.bodies import as_array, as_ndjson
from tests.support.factories import issue_source
from tests.support.schemas import ORDERS, order_records

pytestmark = pytest.mark.django_db(transaction=True)
LIMIT = 1024 * 1024  # INGEST_MAX_BODY_BYTES of the servers below
JSON = {"Content-Type": "application/json"}


def pieces(body: bytes, size: int = 1000) -> Iterator[bytes]:
    """``body`` as a generator: ``requests`` sends it with ``Transfer-Encoding: chunked``."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/ingest/nope/", timeout=2).status_code == 405
    except requests.RequestException:
        return False


@pytest.fixture
def gunicorn(tmp_path) -> Iterator[str]:
    port = free_port()
    children = Children(tmp_path)
    command = [sys.executable, "-m", "gunicorn", "osmos.wsgi", "-w", "1", "-b"]
    env = child_env(INGEST_MAX_BODY_BYTES=str(LIMIT))
    children.start_command([*command, f"127.0.0.1:{port}"], env, "gunicorn")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(base), timeout=30, what="gunicorn to start")
        yield base
    finally:
        children.kill_all()


@pytest.fixture
def waitress_server(settings, monkeypatch) -> Iterator[str]:
    from osmos.wsgi import application

    settings.INGEST_MAX_BODY_BYTES = LIMIT
    # Its threads close their connections after each request: the test database can go.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    server = waitress.create_server(application, host="127.0.0.1", port=0, threads=2)
    closing = threading.Event()

    def run() -> None:
        try:
            server.run()
        except OSError:  # its sockets closed under its select() at the end of the test
            if not closing.is_set():
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.effective_port}"
    try:
        wait_for(lambda: answers(base), timeout=30, what="waitress to start")
        yield base
    finally:
        closing.set()
        server.close()
        thread.join(timeout=5)


@pytest.fixture(params=["gunicorn", "waitress"])
def server(request) -> str:
    return request.getfixturevalue("gunicorn" if request.param == "gunicorn" else "waitress_server")


@pytest.fixture
def issued(org_a):
    return issue_source(org_a, name="Chunked orders", schema=ORDERS)


def test_a_chunked_body_is_stored_like_any_other(server, issued):
    url = f"{server}/ingest/{issued.ingest_token}/"
    body = as_array(order_records(50))
    response = requests.post(url, data=pieces(body), headers=JSON, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 50, "sample_count": 50, "state": "ready"}
    ndjson = as_ndjson(order_records(10, start=50))
    response = requests.post(
        url, data=pieces(ndjson), headers={"Content-Type": "application/x-ndjson"}, timeout=30
    )
    assert response.json()["accepted"] == 10
    gzipped = gzip.compress(as_array(order_records(5, start=60)))
    response = requests.post(
        url, data=pieces(gzipped, 100), headers={**JSON, "Content-Encoding": "gzip"}, timeout=30
    )
    assert response.json()["accepted"] == 5
    stored = Record.objects.filter(connector=issued.connector).order_by("sequence")
    assert [r.data["id"] for r in stored] == list(range(65))


def test_a_chunked_body_keeps_idempotency_and_validation(server, issued):
    url = f"{server}/ingest/{issued.ingest_token}/"
    headers = {**JSON, "Idempotency-Key": "batch-1"}
    body = as_array(order_records(3))
    first = requests.post(url, data=pieces(body, 7), headers=headers, timeout=30)
    again = requests.post(url, data=pieces(body, 11), headers=headers, timeout=30)
    assert first.json()["accepted"] == 3
    assert again.headers["Idempotent-Replayed"] == "true"
    invalid = requests.post(url, data=pieces(b'[{"id": "x"}]'), headers=JSON, timeout=30)
    assert invalid.status_code == 422
    assert Record.objects.filter(connector=issued.connector).count() == 3


def test_a_chunked_body_just_over_the_limit_is_413(server, issued):
    url = f"{server}/ingest/{issued.ingest_token}/"
    body = as_array(order_records(30_000))
    assert LIMIT < len(body) < 2 * LIMIT
    response = requests.post(url, data=pieces(body, 64 * 1024), headers=JSON, timeout=30)
    assert response.status_code == 413
    assert not Record.objects.filter(connector=issued.connector).exists()


def test_an_endless_chunked_body_is_413_while_it_is_being_sent(gunicorn, issued):
    """A raw HTTP/1.1 client streams chunks forever and watches for an answer: the 413 arrives
    once about LIMIT bytes went through, so the server never waited for (or kept) the rest."""
    sock = socket.create_connection(("127.0.0.1", int(gunicorn.rsplit(":", 1)[1])), timeout=30)
    sock.sendall(
        f"POST /ingest/{issued.ingest_token}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    chunk = b"%x\r\n%s\r\n" % (16 * 1024, b" " * 16 * 1024)
    sent = 0
    answer = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            answer = sock.recv(65536)
            break
        try:
            sock.sendall(chunk)
        except OSError:  # the server closed its side after answering: read the answer
            answer = sock.recv(65536)
            break
        sent += 16 * 1024
    # The answer may come in several segments (headers, then body): read it to its end.
    sock.settimeout(10)
    with contextlib.suppress(OSError):
        while part := sock.recv(65536):
            answer += part
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"1048576 bytes" in answer
    assert sent < 20 * LIMIT  # the kernel's buffers hold a little more than the limit
