"""Fixtures of the page tests: logged-in browsers-without-a-browser and ready-made connectors."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from connectors.services import connector_create
from ingest.services import records_ingest, source_save

SOURCE_SCHEMA = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
    {"name": "amount", "type": "number", "nullable": False},
]
DESTINATION_SCHEMA = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
    {"name": "total", "type": "number", "nullable": False},
]


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    """Destinations in these tests point at loopback, which production refuses."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DESTINATION_TEST_TIMEOUT_SECONDS = 2


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def owner_page(owner) -> Client:
    return logged_in(owner)


@pytest.fixture
def member_page(member) -> Client:
    return logged_in(member)


@pytest.fixture
def outsider_page(outsider) -> Client:
    return logged_in(outsider)


def ingest(connector, records: list[dict]) -> None:
    records_ingest(
        source=connector.source,
        body=json.dumps(records).encode(),
        content_type="application/json",
        content_encoding=None,
        idempotency_key=None,
    )


def records(count: int, start: int = 1) -> list[dict]:
    return [
        {"id": i, "email": f"u{i}@x.example", "amount": i * 1.5}
        for i in range(start, start + count)
    ]


def make_source(organization, *, name: str = "Orders", count: int = 0, save: bool = False):
    connector = connector_create(
        organization=organization, name=name, direction="source", fields=SOURCE_SCHEMA
    ).connector
    if count:
        ingest(connector, records(count))
    if save:
        source_save(connector=connector)
    connector.refresh_from_db()
    return connector


def make_destination(organization, *, name: str = "CRM", url: str = "http://127.0.0.1:9/hook"):
    return connector_create(
        organization=organization,
        name=name,
        direction="destination",
        fields=DESTINATION_SCHEMA,
        destination={
            "url": url,
            "headers": [{"name": "Authorization", "value": "Bearer abcdef123456"}],
        },
    ).connector
