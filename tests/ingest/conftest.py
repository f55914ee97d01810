"""Fixtures of the ingest tests: sources of organizations A and B with their ingest tokens."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable

import pytest

from connectors.services import connector_create

SCHEMA = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
    {"name": "amount", "type": "number", "nullable": True},
]


def make_records(count: int, *, start: int = 0) -> list[dict]:
    return [
        {"id": i, "email": f"user{i}@example.com", "amount": i * 1.5}
        for i in range(start, start + count)
    ]


def as_array(records: Iterable[dict]) -> bytes:
    return json.dumps(list(records)).encode()


def as_ndjson(records: Iterable[dict]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body)


def ingest_path(token: str) -> str:
    return f"/ingest/{token}/"


@pytest.fixture
def issued_source(org_a):
    """Org A's source (``.connector``) and its plain ingest token (``.ingest_token``)."""
    return connector_create(
        organization=org_a, name="Shop orders", direction="source", fields=SCHEMA
    )


@pytest.fixture
def source(issued_source):
    return issued_source.connector


@pytest.fixture
def token(issued_source) -> str:
    return issued_source.ingest_token


@pytest.fixture
def issued_source_b(org_b):
    return connector_create(organization=org_b, name="B orders", direction="source", fields=SCHEMA)


@pytest.fixture
def destination(org_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return connector_create(
        organization=org_a,
        name="CRM",
        direction="destination",
        fields=SCHEMA,
        destination={"url": "http://127.0.0.1:9/hook"},
    ).connector
