"""Quotas no tenant can get around (SPEC §4, §7): requests per source per second and records
stored per organization answer 429 with Retry-After and RateLimit headers and store nothing;
an organization has at most ORG_MAX_MINUTELY_PIPELINES pipelines firing every minute."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import Client

from connectors.services import connector_create
from ingest.models import Record
from osmos.errors import InvalidInput
from pipelines.limits import fires_every_minute
from pipelines.services import pipeline_update
from tests.support.factories import make_destination, make_pipeline, make_source
from tests.support.schemas import ORDERS, order_records

SCHEMA = [{"name": "id", "type": "integer", "nullable": False}]


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def new_source(organization, name="S"):
    return connector_create(organization=organization, name=name, direction="source", fields=SCHEMA)


def post(token: str, records: list[dict]):
    return Client().post(
        f"/ingest/{token}/", data=json.dumps(records).encode(), content_type="application/json"
    )


def test_over_the_request_rate_is_429_with_headers_and_nothing_stored(org_a, settings):
    settings.INGEST_REQUESTS_PER_SECOND = 3
    issued = new_source(org_a)
    answers = [post(issued.ingest_token, [{"id": i}]) for i in range(8)]
    statuses = [a.status_code for a in answers]
    # All 8 within one or two one-second windows: at most 6 accepted, at least 2 refused.
    assert statuses.count(200) <= 6
    assert statuses.count(429) >= 2
    refused = next(a for a in answers if a.status_code == 429)
    assert refused["Retry-After"] == "1"
    assert refused["RateLimit-Limit"] == "3"
    assert refused["RateLimit-Remaining"] == "0"
    assert "per second" in refused.json()["detail"]
    stored = Record.objects.filter(connector=issued.connector).count()
    assert stored == statuses.count(200)


def test_the_rate_is_per_source(org_a, settings):
    settings.INGEST_REQUESTS_PER_SECOND = 1
    first, second = new_source(org_a, "A"), new_source(org_a, "B")
    assert post(first.ingest_token, [{"id": 1}]).status_code == 200
    assert post(second.ingest_token, [{"id": 1}]).status_code == 200


def test_the_rate_limit_can_be_turned_off(org_a, settings):
    settings.INGEST_REQUESTS_PER_SECOND = 0
    issued = new_source(org_a)
    assert all(post(issued.ingest_token, [{"id": i}]).status_code == 200 for i in range(20))


def test_over_the_organization_quota_is_429_and_nothing_stored(org_a, org_b, settings):
    settings.ORG_MAX_STORED_RECORDS = 10
    first, second = new_source(org_a, "A"), new_source(org_a, "B")
    assert post(first.ingest_token, [{"id": i} for i in range(6)]).status_code == 200
    refused = post(second.ingest_token, [{"id": i} for i in range(5)])
    assert refused.status_code == 429
    assert refused["Retry-After"]
    assert refused["RateLimit-Remaining"] == "4"
    assert refused.json()["max_stored_records"] == 10
    assert "quota" in refused.json()["detail"]
    assert Record.objects.filter(connector=second.connector).count() == 0
    assert post(second.ingest_token, [{"id": i} for i in range(4)]).status_code == 200
    assert post(first.ingest_token, [{"id": 99}]).status_code == 429
    other_org = new_source(org_b, "B's")
    assert post(other_org.ingest_token, [{"id": i} for i in range(10)]).status_code == 200


def test_the_quota_counts_what_another_process_stored(org_a, settings):
    """The cached total is only a shortcut: without it, the database's count decides."""
    settings.ORG_MAX_STORED_RECORDS = 10
    issued = new_source(org_a)
    assert post(issued.ingest_token, [{"id": i} for i in range(8)]).status_code == 200
    cache.clear()  # as if this process had never seen the organization
    assert post(issued.ingest_token, [{"id": 1}, {"id": 2}, {"id": 3}]).status_code == 429


# --- pipelines firing every minute ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "minutely"),
    [
        ("* * * * *", True),
        ("*/1 9-17 * * 1-5", True),
        ("0-59 * * * *", True),
        ("5,6 * * * *", True),
        ("0,59 * * * *", True),
        ("*/2 * * * *", False),
        ("0 7 * * *", False),
        ("0,30 * * * *", False),
    ],
)
def test_what_fires_every_minute(cron, minutely):
    assert fires_every_minute(cron) is minutely


def _source(organization):
    return make_source(organization, records=order_records(50), save=True)


def _destination(organization):
    return make_destination(organization, schema=ORDERS, url="http://127.0.0.1:9/")


def test_the_minutely_pipelines_of_an_organization_are_capped(org_a, org_b, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.ORG_MAX_MINUTELY_PIPELINES = 2
    source = _source(org_a)
    destination = _destination(org_a)
    every_minute = {"cron": "* * * * *", "timezone": "UTC"}
    make_pipeline(org_a, source, destination, name="P1", schedule=every_minute)
    make_pipeline(org_a, source, destination, name="P2", schedule=every_minute)
    with pytest.raises(InvalidInput, match="every minute") as refused:
        make_pipeline(org_a, source, destination, name="P3", schedule=every_minute)
    assert [error.field for error in refused.value.errors] == ["schedule"]
    slower = make_pipeline(
        org_a, source, destination, name="P3", schedule={"cron": "*/5 * * * *", "timezone": "UTC"}
    )
    with pytest.raises(InvalidInput, match="every minute"):
        pipeline_update(pipeline=slower, schedule=every_minute)
    make_pipeline(org_a, source, destination, name="P4", schedule=every_minute, enabled=False)
    source_b = _source(org_b)
    destination_b = _destination(org_b)
    make_pipeline(org_b, source_b, destination_b, name="B1", schedule=every_minute)


def test_the_api_answers_400_over_the_cap(org_a, api_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.ORG_MAX_MINUTELY_PIPELINES = 1
    source = _source(org_a)
    destination = _destination(org_a)
    every_minute = {"cron": "* * * * *", "timezone": "UTC"}
    make_pipeline(org_a, source, destination, name="P1", schedule=every_minute)
    response = api_a.post(
        "/api/v1/pipelines/",
        {
            "name": "P2",
            "source": str(source.pk),
            "destination": str(destination.pk),
            "schedule": every_minute,
        },
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert "every minute" in str(response.json()["schedule"])
