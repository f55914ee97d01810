"""POST /api/v1/connectors/{id}/test/: one request to a destination, reported inline."""

from __future__ import annotations

import time

import pytest

from tests.outbound.drip import DripServer, drip
from tests.support.delivery import SECRET, make_destination, make_source
from tests.support.sink import Answer


@pytest.fixture
def destination(org_a, sink):
    return make_destination(org_a, sink.url)


def test_batch_destination_receives_sample_records_and_the_answer_is_reported(
    api_a, sink, destination
):
    sink.behave = lambda request: Answer(201, b'{"received": 3}')
    response = api_a.post(f"/api/v1/connectors/{destination.id}/test/", {}, format="json")
    assert response.status_code == 200
    data = response.json()
    assert (data["ok"], data["status"], data["response_excerpt"]) == (True, 201, '{"received": 3}')
    assert data["records_sent"] == 3
    assert data["elapsed_ms"] >= 0
    (request,) = sink.requests
    assert request.json() == [{"id": 1, "email": "example", "total": 1.5}] * 3
    assert request.header("Authorization") == SECRET
    assert request.header("Idempotency-Key").startswith("osmos-test-")


def test_single_destination_receives_one_object(api_a, org_a, sink):
    destination = make_destination(org_a, sink.url, name="One", write_mode="single")
    records = [{"id": 9, "email": "a@b.c", "total": 2}]
    response = api_a.post(
        f"/api/v1/connectors/{destination.id}/test/", {"records": records}, format="json"
    )
    assert response.json()["ok"] is True
    assert sink.requests[0].json() == records[0]


def test_refusal_by_the_destination_is_reported_with_its_status_and_excerpt(
    api_a, sink, destination
):
    sink.behave = lambda request: Answer(401, b'{"error": "bad token"}')
    data = api_a.post(f"/api/v1/connectors/{destination.id}/test/").json()
    assert (data["ok"], data["status"]) == (False, 401)
    assert data["response_excerpt"] == '{"error": "bad token"}'
    assert "401" in data["error"]


def test_unreachable_destination_is_ok_false_not_a_server_error(api_a, sink, destination):
    sink.close()
    response = api_a.post(f"/api/v1/connectors/{destination.id}/test/")
    assert response.status_code == 200
    data = response.json()
    assert (data["ok"], data["status"]) == (False, None)
    assert "Could not connect" in data["error"]


def test_slow_destination_is_cut_by_the_short_test_timeout(api_a, sink, destination, settings):
    settings.DESTINATION_TEST_TIMEOUT_SECONDS = 0.3
    sink.behave = lambda request: Answer(200, b"", delay=1)
    started = time.monotonic()
    data = api_a.post(f"/api/v1/connectors/{destination.id}/test/").json()
    assert time.monotonic() - started < 1.0
    assert data["ok"] is False
    assert "did not complete the request within 0.3 s" in data["error"]


def test_a_dripping_destination_is_cut_by_the_test_cap(api_a, org_a, settings):
    """A status line, then one byte every 0.2 s: the whole test ends by the cap (here 1 s)
    although the destination's own timeout is 30 s."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DESTINATION_TEST_TIMEOUT_SECONDS = 1

    def answer(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        drip(conn, b"x" * 1000)

    server = DripServer(answer)
    try:
        destination = make_destination(org_a, server.url())
        started = time.monotonic()
        response = api_a.post(f"/api/v1/connectors/{destination.id}/test/")
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert response.status_code == 200
    assert elapsed < 1 + 1.5  # generous: the machine is loaded
    data = response.json()
    assert data["ok"] is False
    assert "within 1 s" in data["error"]


def test_given_records_must_match_the_destination_schema(api_a, sink, destination):
    response = api_a.post(
        f"/api/v1/connectors/{destination.id}/test/", {"records": [{"id": "x"}]}, format="json"
    )
    assert response.status_code == 400
    assert "records" in response.json()
    assert sink.requests == []


def test_a_source_cannot_be_tested(api_a, org_a, sink):
    source = make_source(org_a)
    response = api_a.post(f"/api/v1/connectors/{source.id}/test/")
    assert response.status_code == 400
    assert response.json()["detail"] == "Only a destination can be tested."


def test_members_cannot_test_and_other_organizations_get_404(
    member_client, outsider_client, sink, destination
):
    url = f"/api/v1/connectors/{destination.id}/test/"
    assert member_client.post(url).status_code == 403
    assert outsider_client.post(url).status_code == 404
    assert sink.requests == []
