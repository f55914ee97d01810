"""Fixtures of the connector tests: one destination and one source of organization A.

Destination URLs point at 127.0.0.1, which the address guard refuses unless allow-listed:
the ``allow_loopback`` fixture does that (tests of refused URLs clear the list instead).
"""

from __future__ import annotations

import pytest

from connectors.services import connector_create

SCHEMA = [
    {"name": "email", "type": "string", "nullable": False},
    {"name": "age", "type": "integer", "nullable": True},
    {"name": "signed_up", "type": "datetime", "nullable": False},
]
SECRET = "Bearer s3cret-value-9f3a"
DESTINATION = {
    "url": "http://127.0.0.1:8824/v2/notify",
    "method": "PUT",
    "headers": [{"name": "Authorization", "value": SECRET}, {"name": "X-Team", "value": "crm"}],
    "write_mode": "batch",
    "batch_size": 1000,
    "split_failed_batches": True,
    "timeout_seconds": 12,
}


@pytest.fixture
def allow_loopback(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def refuse_private(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


@pytest.fixture
def destination_a(org_a, allow_loopback):
    return connector_create(
        organization=org_a,
        name="CRM contacts",
        direction="destination",
        fields=SCHEMA,
        destination=DESTINATION,
    ).connector


@pytest.fixture
def issued_source_a(org_a):
    """The source of org A with its plain ingest token (``.connector``, ``.ingest_token``)."""
    return connector_create(
        organization=org_a, name="Shop orders", direction="source", fields=SCHEMA
    )


@pytest.fixture
def source_a(issued_source_a):
    return issued_source_a.connector
