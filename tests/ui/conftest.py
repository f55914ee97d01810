"""Fixtures of the page tests: logged-in browsers-without-a-browser (helpers: tests/support)."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.support.factories import page_client


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    """Destinations in these tests point at loopback, which production refuses."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DESTINATION_TEST_TIMEOUT_SECONDS = 2


@pytest.fixture
def owner_page(owner) -> Client:
    return page_client(owner)


@pytest.fixture
def member_page(member) -> Client:
    return page_client(member)


@pytest.fixture
def outsider_page(outsider) -> Client:
    return page_client(outsider)
