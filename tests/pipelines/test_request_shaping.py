"""Request shaping end to end (SPEC §3.2): body envelopes in both modes with splitting and
per-record results, per-record URLs with hostile values checked at a real loopback sink,
signed as sent; refused templates through the API. Real actors on the configured broker."""

from __future__ import annotations

import json
from urllib.parse import unquote, urlsplit

import pytest
from standardwebhooks.webhooks import Webhook

from connectors.services import connector_create, connector_update
from ingest.services import source_save
from pipelines.models import RecordFailure, RunState
from pipelines.services import run_create
from tests.support.actors import join_actors, running_worker
from tests.support.delivery import (
    SOURCE_SCHEMA,
    make_destination,
    make_pipeline,
    make_source,
)
from tests.support.factories import ingest
from tests.support.schemas import noted_order_records as make_records
from tests.support.sink import Answer, Sink

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _loopback(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DELIVERY_RETRY_SCHEDULE = (0.05, 0.05)
    settings.DELIVERY_QUICK_RETRY_SECONDS = 0


def _run(pipeline):
    with running_worker() as worker:
        run = run_create(pipeline=pipeline, trigger="api")
        join_actors(worker)
    run.refresh_from_db()
    return run


def _failures(run) -> dict[int, str]:
    return dict(RecordFailure.objects.filter(run=run).values_list("sequence", "reason"))


def test_a_batch_envelope_is_kept_around_every_bisected_half_and_rejections_index_records(org_a):
    def behave(request):
        body = request.json()
        ids = [record["id"] for record in body["events"]]
        if 7 in ids:
            return Answer(422, b'{"error": "bad record"}')
        rejected = [{"index": i, "reason": "duplicate"} for i, id_ in enumerate(ids) if id_ == 30]
        return Answer(200, json.dumps({"rejected": rejected}).encode())

    template = {"events": "{{records}}", "source": "osmos", "meta": {"records": "{{x}}"}}
    with Sink(behave) as sink:
        destination = make_destination(
            org_a,
            sink.url,
            batch_size=50,
            split_failed_batches=True,
            response_format="per_record",
            body_template=template,
        )
        secret = connector_update(
            connector=destination, destination={"signing": {"enabled": True}}
        ).signing_secret
        run = _run(make_pipeline(org_a, make_source(org_a, count=50), destination))
        assert (run.state, run.records_delivered, run.records_failed) == (
            RunState.PARTIALLY_FAILED,
            48,
            2,
        )
        assert len(sink.requests) > 2  # the batch was bisected
        for request in sink.requests:
            body = request.json()
            assert set(body) == {"events", "source", "meta"}
            assert (body["source"], body["meta"]) == ("osmos", {"records": "{{x}}"})
            # Signed over the bytes sent: the envelope included.
            headers = {k.lower(): v for k, v in request.headers.items()}
            Webhook(secret).verify(request.body, headers)
        delivered = [
            r["id"] for q in sink.requests if q.answered == 200 for r in q.json()["events"]
        ]
        assert sorted(delivered) == [i for i in range(1, 51) if i != 7]
        failures = _failures(run)
        assert set(failures) == {7, 30}
        assert failures[30] == "Rejected by the destination: duplicate"
        assert "422" in failures[7]


def _source_with_emails(organization, emails: list[str]):
    connector = connector_create(
        organization=organization, name="People", direction="source", fields=SOURCE_SCHEMA
    ).connector
    records = make_records(50)
    for record, email in zip(records, emails, strict=False):
        record["email"] = email
    ingest(connector, records)
    source_save(connector=connector)
    connector.refresh_from_db()
    return connector


HOSTILE = ["../admin", "/", "?x=1&y=2", "#top", "%2e%2e", "ünïcødé €", "a b+c", "x" * 1500]
REFUSED = {"..": "path segment '..'", "y" * 2100: "the limit is 2,048"}


def test_per_record_urls_keep_each_hostile_value_inside_its_segment_at_the_sink(org_a):
    def behave(request):
        if request.json()["data"]["id"] == 3:  # per-record results: index 0 in single mode
            return Answer(200, b'{"rejected": [{"index": 0, "reason": "locked"}]}')
        return Answer(200, b"{}")

    emails = [*HOSTILE, *REFUSED]
    with Sink(behave) as sink:
        destination = make_destination(
            org_a,
            sink.url + "/users/{{email}}?id={{id}}&v=1",
            method="PUT",
            write_mode="single",
            response_format="per_record",
            body_template={"data": "{{record}}", "kind": "user"},
        )
        source = _source_with_emails(org_a, emails)
        run = _run(make_pipeline(org_a, source, destination))
        assert (run.records_delivered, run.records_failed) == (47, 3)
        by_id = {}
        for request in sink.requests:
            assert request.method == "PUT"
            body = request.json()
            assert body["kind"] == "user"
            assert set(body) == {"data", "kind"}
            parts = urlsplit(request.path)
            segments = parts.path.split("/")
            assert segments[:3] == ["", "hook", "users"]
            assert len(segments) == 4
            assert parts.fragment == ""
            query = dict(pair.split("=") for pair in parts.query.split("&"))
            assert set(query) == {"id", "v"}
            assert unquote(segments[3]) == body["data"]["email"]
            assert int(query["id"]) == body["data"]["id"]
            by_id[body["data"]["id"]] = request
        # Every record got its own request and key; the refused ones none.
        assert set(by_id) == set(range(1, 51)) - {9, 10}
        keys = {request.header("Idempotency-Key") for request in sink.requests}
        assert len(keys) == len(sink.requests)
        for index, email in enumerate(HOSTILE, start=1):
            assert unquote(urlsplit(by_id[index].path).path.split("/")[3]) == email
        failures = _failures(run)
        assert failures[3] == "Rejected by the destination: locked"
        assert REFUSED[".."] in failures[9]
        assert REFUSED["y" * 2100] in failures[10]


BAD_TEMPLATES = [
    ({"body_template": {"a": "{{records}}", "b": "{{records}}"}}, "body_template", "exactly once"),
    ({"url": "http://{{email}}.example.com/x", "write_mode": "single"}, "url", "host and port"),
    ({"url": "http://127.0.0.1:9/x/{{total}}", "write_mode": "single"}, "url", "number field"),
    ({"body_template": {"a": "{{record}}"}}, "body_template", 'not "{{record}}"'),
    ({"body_template": {"a": "{{records}}", "p": "x" * 17000}}, "body_template", "16,384"),
]


@pytest.mark.parametrize(("settings_", "field", "fragment"), BAD_TEMPLATES)
def test_the_api_refuses_bad_templates_with_field_errors(api_a, settings_, field, fragment):
    body = {
        "name": "Shaped",
        "direction": "destination",
        "schema": [
            {"name": "email", "type": "string", "nullable": False},
            {"name": "total", "type": "number", "nullable": False},
            {"name": "note", "type": "string", "nullable": True},
        ],
        "destination": {"url": "http://127.0.0.1:9/x", **settings_},
    }
    response = api_a.post("/api/v1/connectors/", body, format="json")
    assert response.status_code == 400, response.json()
    messages = response.json()["destination"][field]
    assert any(fragment in message for message in messages), messages


def test_a_nullable_url_field_and_a_mode_change_are_refused_on_update(api_a, org_a):
    destination = make_destination(org_a, "http://127.0.0.1:9/x", write_mode="single")
    url = f"/api/v1/connectors/{destination.pk}/"
    ok = api_a.patch(url, {"destination": {"url": "http://127.0.0.1:9/u/{{email}}"}}, format="json")
    assert ok.status_code == 200, ok.json()
    assert ok.json()["destination"]["url"] == "http://127.0.0.1:9/u/{{email}}"
    # Batch mode cannot fill a per-record URL: the stored URL is checked with the new mode.
    refused = api_a.patch(url, {"destination": {"write_mode": "batch"}}, format="json")
    assert refused.status_code == 400
    assert "write mode single" in refused.json()["destination"]["url"][0]
