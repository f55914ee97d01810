"""Schemas have at most ``SCHEMA_MAX_FIELDS`` fields, and pages show bounded previews (SPEC §7):
a 100,000-field schema once took 76 s and 325 MB of HTML to show."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.utils import timezone

from connectors.models import Connector, SchemaField, SourceSettings
from ingest.models import Record
from osmos.tenancy.models import new_secret_token

LIST = "/api/v1/connectors/"


def fields(count: int) -> list[dict]:
    return [{"name": f"f{i}", "type": "string", "nullable": True} for i in range(count)]


def test_a_501_field_schema_is_refused_with_a_clear_message(api_a):
    response = api_a.post(
        LIST, {"name": "Wide", "direction": "source", "schema": fields(501)}, format="json"
    )
    assert response.status_code == 400
    message = response.json()["schema"][0]["message"]
    assert "at most 500 fields" in message
    assert "501" in message
    assert not Connector.objects.filter(name="Wide").exists()


def test_a_500_field_schema_is_accepted(api_a):
    response = api_a.post(
        LIST, {"name": "Wide", "direction": "source", "schema": fields(500)}, format="json"
    )
    assert response.status_code == 201


def test_the_limit_is_a_setting(api_a, settings):
    settings.SCHEMA_MAX_FIELDS = 3
    response = api_a.post(
        LIST, {"name": "W", "direction": "source", "schema": fields(4)}, format="json"
    )
    assert response.status_code == 400
    assert "at most 3 fields" in response.json()["detail"]


def test_a_100000_field_schema_is_refused_fast(api_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
    started = time.monotonic()
    response = api_a.post(
        LIST, {"name": "W", "direction": "source", "schema": fields(100_000)}, format="json"
    )
    assert response.status_code == 400
    assert len(response.content) < 2000  # one error, not 100,000
    assert time.monotonic() - started < 20


@pytest.fixture
def legacy_wide_source(org_a):
    """A source saved before the limit existed: 3,000 fields and a record of long values."""
    connector = Connector.objects.create(organization=org_a, name="Legacy", direction="source")
    SchemaField.objects.bulk_create(
        SchemaField(connector=connector, position=i, name=f"f{i}", type="string", nullable=True)
        for i in range(3000)
    )
    _token, lookup, token_hash = new_secret_token()
    SourceSettings.objects.create(
        connector=connector, token_lookup=lookup, token_hash=token_hash, record_count=1,
        last_sequence=1,
    )  # fmt: skip
    Record.objects.create(
        organization=org_a,
        connector=connector,
        sequence=1,
        received_at=timezone.now(),
        data={f"f{i}": "x" * 5000 for i in range(3000)},
    )
    return connector


def test_the_page_of_a_wide_source_shows_a_bounded_preview(owner, legacy_wide_source):
    client = Client()
    client.force_login(owner)
    response = client.get(f"/connectors/{legacy_wide_source.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert len(html) < 600_000, len(html)  # the record alone is 15 MB of values
    assert "x" * 5000 not in html
    assert "2950 more not shown" in html
    assert "The first 500 of 3000 fields are shown" in html
