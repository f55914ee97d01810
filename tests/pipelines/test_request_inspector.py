"""The request inspector (SPEC §5.6): every attempt of a run, the request as sent and the answer.

Runs are executed for real against loopback sinks; what the inspector shows is compared with
what the sink received (bodies rebuilt from the stored records, idempotency keys, headers).
"""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from osmos.tenancy.models import Membership
from pipelines import delivery
from pipelines.models import RequestLog, RequestTemplate, RunState
from pipelines.services import run_create
from tests.support.delivery import (
    SECRET,
    make_destination,
    make_pipeline,
    make_source,
)
from tests.support.sink import Answer, Sink, SinkRequest, fail_ids, first, status

pytestmark = pytest.mark.django_db(transaction=True)

API_KEY = "key-9f8e7d6c5b4a"


@pytest.fixture(autouse=True)
def _loopback(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def all_requests(client, run, *, page_size: int = 1000) -> list[dict]:
    """Every attempt of the run, following the cursor pages."""
    url, found = f"/api/v1/runs/{run.pk}/requests/?page_size={page_size}", []
    while url:
        answer = client.get(url)
        assert answer.status_code == 200, answer.content
        found.extend(answer.json()["results"])
        url = answer.json()["next"]
    return found


def echo(request: SinkRequest) -> Answer:
    """A hostile destination: refuses with the request's headers in its body and headers."""
    seen = {name: value for name, value in request.headers.items()}
    return Answer(
        status=400,
        body=json.dumps(
            {"you_sent": seen, "raw": f"auth was {request.header('Authorization')}"}
        ).encode(),
        headers=(
            ("X-Echo", request.header("Authorization") or ""),
            ("X-Echo-Key", f"seen {request.header('X-Api-Key')}"),
            ("Set-Cookie", "session=abc123def456; HttpOnly"),
            ("X-Request-Ref", "ref-42"),
        ),
    )


def test_secrets_are_masked_and_an_echoed_secret_is_removed(org_a, member_client):
    with Sink(echo) as hostile:
        source = make_source(org_a, count=50)
        destination = make_destination(
            org_a,
            hostile.url,
            headers=[
                {"name": "Authorization", "value": SECRET},
                {"name": "X-Api-Key", "value": API_KEY},
            ],
            batch_size=25,
        )
        run = run_create(pipeline=make_pipeline(org_a, source, destination), trigger="api")
        delivery.run_execute(run_id=run.id)
        sent = list(hostile.requests)
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert SECRET in sent[0].header("Authorization")  # the secret did go out (and came back)

    answer = member_client.get(f"/api/v1/runs/{run.pk}/requests/")
    assert answer.status_code == 200
    text = answer.content.decode()
    token = SECRET.split()[1]
    for secret in (SECRET, token, API_KEY, "abc123def456"):
        assert secret not in text
        assert not RequestLog.objects.filter(response_excerpt__contains=secret).exists()
    attempts = answer.json()["results"]
    assert [a["status"] for a in attempts] == [400, 400]
    first_attempt = attempts[0]
    request = first_attempt["request"]
    assert request["method"] == "POST"
    assert request["url"] == hostile.url
    assert request["headers"]["Authorization"] == "••••" + SECRET[-4:]
    assert request["headers"]["X-Api-Key"] == "••••" + API_KEY[-4:]
    assert request["headers"]["Idempotency-Key"] == sent[0].header("Idempotency-Key")
    assert request["headers"]["Content-Type"] == "application/json"
    # The body is rebuilt from the stored records: the start of what the sink received.
    assert request["body_excerpt"] == sent[0].body[:2048].decode()
    assert request["body_truncated"] is (len(sent[0].body) > 2048)
    response = first_attempt["response"]
    assert response["status"] == 400
    assert response["headers"]["x-request-ref"] == "ref-42"
    assert response["headers"]["x-echo"] == "[redacted]"
    assert response["headers"]["x-echo-key"] == "seen [redacted]"
    assert "[redacted]" in response["body_excerpt"]
    assert "you_sent" in response["body_excerpt"]
    # No secret stored anywhere the inspector reads from.
    for template in RequestTemplate.objects.filter(run=run):
        assert SECRET not in json.dumps(template.headers)
        assert API_KEY not in json.dumps(template.headers)

    # The failures JSON carries the (scrubbed) answer too.
    failures = member_client.get(f"/api/v1/runs/{run.pk}/failures/").json()["results"]
    assert failures[0]["response_excerpt"].startswith('{"you_sent"')
    assert SECRET not in json.dumps(failures)
    assert API_KEY not in json.dumps(failures)

    # The run page's Requests tab shows the same, masked.
    page = Client()
    page.force_login(Membership.objects.filter(organization=org_a).first().user)
    html = page.get(f"/pipelines/runs/{run.pk}/?tab=requests").content.decode()
    assert sent[0].header("Idempotency-Key") in html
    assert "x-request-ref" in html
    for secret in (SECRET, token, API_KEY, "abc123def456"):
        assert secret not in html


def _execute_until_finished(run, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery.run_execute(run_id=run.id)
        run.refresh_from_db()
        if run.is_finished:
            return
        time.sleep(0.1)  # the compressed retry schedule's next step
    raise AssertionError(f"run still {run.state}: {run.queued_reason or run.last_error}")


def test_attempts_of_a_retried_batch_are_listed_in_order(org_a, member_client):
    with Sink(first(2, status(503))) as flaky:
        source = make_source(org_a, count=60)
        destination = make_destination(org_a, flaky.url, batch_size=20)
        run = run_create(pipeline=make_pipeline(org_a, source, destination), trigger="api")
        _execute_until_finished(run)
        sent = list(flaky.requests)
    assert run.state == RunState.SUCCEEDED
    attempts = all_requests(member_client, run)
    assert [(a["chunk"], a["attempt"], a["status"]) for a in attempts] == [
        (0, 1, 503),
        (0, 2, 503),
        (0, 3, 200),
        (1, 1, 200),
        (2, 1, 200),
    ]
    assert [a["request"]["headers"]["Idempotency-Key"] for a in attempts] == [
        r.header("Idempotency-Key") for r in sent
    ]
    assert all(a["sequence_from"] <= a["sequence_to"] for a in attempts)
    assert attempts[0]["response"]["body_excerpt"] == '{"error": "unavailable"}'
    # Pages of 2 give the same list in the same order.
    assert all_requests(member_client, run, page_size=2) == attempts
    sent_at = [a["sent_at"] for a in attempts]
    assert sent_at == sorted(sent_at)


def test_bisected_parts_and_single_mode_bodies_match_what_was_sent(org_a, member_client, settings):
    with Sink(fail_ids([7])) as crm:
        source = make_source(org_a, count=50)
        batch = make_destination(org_a, crm.url, batch_size=10, split_failed_batches=True)
        run = run_create(pipeline=make_pipeline(org_a, source, batch), trigger="api")
        delivery.run_execute(run_id=run.id)
        sent = {r.header("Idempotency-Key"): r.body for r in crm.requests}
    attempts = all_requests(member_client, run)
    assert len(attempts) == len(sent) > 5  # the chunk of record 7 was bisected
    for attempt in attempts:
        body = sent[attempt["request"]["headers"]["Idempotency-Key"]]
        assert attempt["request"]["body_excerpt"] == body[:2048].decode()
        assert attempt["request"]["headers"].get("Content-Length") == str(len(body))
    parts = [a for a in attempts if a["record_count"] < 10]
    assert {a["sequence_from"] for a in parts if a["record_count"] == 1} >= {7}

    settings.REQUEST_LOG_SUCCESS_BODY_CHARS = 5
    with Sink(status(201, body=b'{"created": true, "padding": "' + b"x" * 40 + b'"}')) as one:
        single = make_destination(org_a, one.url, name="One by one", write_mode="single")
        pipeline = make_pipeline(org_a, source, single, name="Singles")
        run = run_create(pipeline=pipeline, trigger="api")
        delivery.run_execute(run_id=run.id)
        sent = {r.header("Idempotency-Key"): r.body for r in one.requests}
    attempts = all_requests(member_client, run)
    assert len(attempts) == len(sent) == 50
    for attempt in attempts:
        assert attempt["record_count"] == 1
        body = sent[attempt["request"]["headers"]["Idempotency-Key"]]
        assert attempt["request"]["body_excerpt"] == body.decode()
        assert json.loads(body)["id"] == attempt["sequence_from"]
        # A 2xx body longer than REQUEST_LOG_SUCCESS_BODY_CHARS is not kept; headers are.
        assert attempt["response"]["status"] == 201
        assert attempt["response"]["body_excerpt"] == ""
        assert attempt["response"]["headers"]["content-type"] == "application/json"
        assert "date" not in attempt["response"]["headers"]  # per-request noise of a 2xx


def test_another_organization_gets_404(org_a, member_client, outsider_client, api_b):
    with Sink(status(200)) as crm:
        source = make_source(org_a, count=50)
        run = run_create(
            pipeline=make_pipeline(org_a, source, make_destination(org_a, crm.url)), trigger="api"
        )
        delivery.run_execute(run_id=run.id)
    assert member_client.get(f"/api/v1/runs/{run.pk}/requests/").status_code == 200
    for client in (outsider_client, api_b):
        answer = client.get(f"/api/v1/runs/{run.pk}/requests/")
        assert answer.status_code == 404
        assert str(source.pk) not in answer.content.decode()
    page = outsider_client.get(f"/pipelines/runs/{run.pk}/?tab=requests")
    assert page.status_code == 404


def test_shaped_requests_are_rebuilt_as_sent_envelope_and_per_record_url(org_a, member_client):
    """The inspector renders a body template's envelope and a per-record URL (SPEC §3.2)
    with the senders' own renderer: each rebuilt request equals what the sink received."""
    source = make_source(org_a, count=50)
    with Sink(status(200)) as crm:
        batch = make_destination(
            org_a, crm.url, batch_size=20, body_template={"events": "{{records}}", "v": 2}
        )
        run = run_create(pipeline=make_pipeline(org_a, source, batch), trigger="api")
        delivery.run_execute(run_id=run.id)
        sent = {r.header("Idempotency-Key"): r.body for r in crm.requests}
    attempts = all_requests(member_client, run)
    assert len(attempts) == len(sent) == 3
    for attempt in attempts:
        body = sent[attempt["request"]["headers"]["Idempotency-Key"]]
        assert json.loads(body)["v"] == 2
        assert json.loads(body)["events"]
        assert attempt["request"]["body_excerpt"] == body[:2048].decode()

    with Sink(status(200)) as users:
        single = make_destination(
            org_a,
            users.url.rstrip("/") + "/users/{{email}}?id={{id}}",
            name="Users",
            method="PUT",
            write_mode="single",
            body_template={"data": "{{record}}"},
        )
        run = run_create(pipeline=make_pipeline(org_a, source, single, name="Users"), trigger="api")
        delivery.run_execute(run_id=run.id)
        sent = {r.header("Idempotency-Key"): r for r in users.requests}
    attempts = all_requests(member_client, run)
    assert len(attempts) == len(sent) == 50
    for attempt in attempts:
        request = sent[attempt["request"]["headers"]["Idempotency-Key"]]
        assert attempt["request"]["method"] == "PUT"
        assert attempt["request"]["url"].endswith(request.path)
        assert "{{" not in attempt["request"]["url"]
        assert attempt["request"]["body_excerpt"] == request.body.decode()
        assert request.body.startswith(b'{"data":{')
