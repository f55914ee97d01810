"""Fixtures of the connector tests: one destination and one source of organization A.

Destination URLs point at 127.0.0.1, which the address guard refuses unless allow-listed:
the ``allow_loopback`` fixture does that (tests of refused URLs clear the list instead).
"""

from __future__ import annotations

import pytest

from connectors.services import connector_create
from tests.support.connectors import DESTINATION
from tests.support.factories import issue_source
from tests.support.schemas import CONTACTS


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
        fields=CONTACTS,
        destination=DESTINATION,
    ).connector


@pytest.fixture
def issued_source_a(org_a):
    """The source of org A with its plain ingest token (``.connector``, ``.ingest_token``)."""
    return issue_source(org_a, name="Shop orders", schema=CONTACTS)


@pytest.fixture
def source_a(issued_source_a):
    return issued_source_a.connector
