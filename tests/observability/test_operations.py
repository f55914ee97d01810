"""Request ids, JSON logs and /metrics (issue 13, SPEC §5.6 "Operations")."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from connectors.services import connector_create
from osmos.observability import context
from osmos.observability.logs import JsonFormatter
from pipelines.models import Run

SCHEMA = [{"name": "id", "type": "integer", "nullable": False}]


def scrape(client: Client, token: str = "metrics-secret") -> dict[str, dict[tuple, float]]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


@pytest.fixture
def metrics_on(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.METRICS_TOKEN = "metrics-secret"


def test_every_response_carries_a_request_id(db, client):
    ids = set()
    for path in ("/login/", "/api/v1/connectors/", "/no-such-page/", "/ingest/osm_nope/"):
        response = client.get(path)
        assert len(response["X-Request-ID"]) == 32, path
        ids.add(response["X-Request-ID"])
    assert len(ids) == 4


def test_a_request_id_from_the_client_is_ignored_unless_the_proxy_is_trusted(db, client, settings):
    settings.REQUEST_ID_TRUSTED = False
    assert client.get("/login/", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] != "abc-123"
    settings.REQUEST_ID_TRUSTED = True
    assert client.get("/login/", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    # Not a safe id: a new one is made rather than echoing it into logs and headers.
    assert client.get("/login/", HTTP_X_REQUEST_ID="a b\tc")["X-Request-ID"] != "a b\tc"


def test_metrics_answer_404_while_no_token_is_configured(db, client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_metrics_require_the_token(db, client, metrics_on):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


def test_metrics_count_ingest_requests_by_status(db, client, org_a, metrics_on):
    issued = connector_create(organization=org_a, name="src", direction="source", fields=SCHEMA)
    path = f"/ingest/{issued.ingest_token}/"
    before = scrape(client).get("osmos_ingest_requests_total", {})
    ok = client.post(path, data=json.dumps([{"id": 1}]), content_type="application/json")
    bad = client.post(path, data=json.dumps([{"id": "x"}]), content_type="application/json")
    assert (ok.status_code, bad.status_code) == (200, 422)
    after = scrape(client)["osmos_ingest_requests_total"]
    for status in ("200", "422"):
        key = (("status", status),)
        assert after[key] - before.get(key, 0) == 1


def test_metrics_show_runs_by_state_from_the_database(db, client, org_a, member, metrics_on):
    from datetime import timedelta

    from django.utils import timezone

    from tests.support.factories import build_world

    world = build_world(org_a, member_user=member)  # one partially failed run
    Run.objects.create(
        organization=org_a,
        pipeline=world.pipeline,
        trigger="api",
        state="queued",
        enqueued_at=timezone.now() - timedelta(seconds=90),
    )
    samples = scrape(client)
    assert samples["osmos_runs"][(("state", "queued"),)] == 1
    assert samples["osmos_runs"][(("state", "partially_failed"),)] == 1
    assert samples["osmos_runs"][(("state", "succeeded"),)] == 0
    assert samples["osmos_queue_lag_seconds"][()] >= 90


def test_json_log_lines_carry_the_request_id_organization_and_run():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.observability")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with context.bind(request_id="r1", organization="o1", run="run-1"):
            logger.info("sent %s records", 3)
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "sent 3 records"
    assert (inside["request_id"], inside["organization"], inside["run"]) == ("r1", "o1", "run-1")
    assert inside["level"] == "INFO"
    assert inside["logger"] == "tests.observability"
    assert "request_id" not in outside
    assert "run" not in outside


def test_log_format_is_parsed_strictly(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import django, os; django.setup()"],
        env={
            **__import__("os").environ,
            "DJANGO_SETTINGS_MODULE": "osmos.settings",
            "LOG_FORMAT": "xml",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "LOG_FORMAT must be plain or json" in result.stderr


def test_metrics_count_deliveries_and_show_destination_health(db, client, org_a, metrics_on):
    from connectors.health import health_pause
    from pipelines import delivery
    from pipelines.services import run_create
    from tests.support.factories import make_destination, make_pipeline, make_source
    from tests.support.schemas import ORDERS, order_records
    from tests.support.sink import Sink

    before = scrape(client)
    with Sink() as sink:
        destination = make_destination(org_a, schema=ORDERS, url=sink.url, batch_size=20)
        source = make_source(org_a, records=order_records(50), save=True)
        run = run_create(pipeline=make_pipeline(org_a, source, destination), trigger="api")
        delivery.run_execute(run_id=run.id)
    after = scrape(client)

    def grew(name: str, key: tuple) -> float:
        return after[name].get(key, 0) - before.get(name, {}).get(key, 0)

    assert grew("osmos_delivery_records_total", (("outcome", "delivered"),)) == 50
    assert grew("osmos_delivery_requests_total", (("status_class", "2xx"),)) == 3
    assert grew("osmos_delivery_request_duration_seconds_count", ()) == 3
    assert after["osmos_destinations"][(("health", "healthy"),)] == 1
    health_pause(connector_id=destination.pk, error="410 Gone")
    paused = scrape(client)["osmos_destinations"]
    assert (paused[(("health", "paused"),)], paused[(("health", "healthy"),)]) == (1, 0)
