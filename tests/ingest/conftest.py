"""Fixtures of the ingest tests: sources of organizations A and B with their ingest tokens."""

from __future__ import annotations

import pytest

from tests.support.factories import issue_source, make_destination
from tests.support.schemas import ORDERS


@pytest.fixture
def issued_source(org_a):
    """Org A's source (``.connector``) and its plain ingest token (``.ingest_token``)."""
    return issue_source(org_a, name="Shop orders", schema=ORDERS)


@pytest.fixture
def source(issued_source):
    return issued_source.connector


@pytest.fixture
def token(issued_source) -> str:
    return issued_source.ingest_token


@pytest.fixture
def issued_source_b(org_b):
    return issue_source(org_b, name="B orders", schema=ORDERS)


@pytest.fixture
def destination(org_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return make_destination(org_a, name="CRM", schema=ORDERS)
