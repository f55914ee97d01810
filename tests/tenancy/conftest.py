"""Fixtures of the tenancy tests: an admin beside the shared owner, member and outsider."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from osmos.tenancy.models import Membership, Role
from tests.support.factories import make_user


@pytest.fixture(autouse=True)
def _fresh_signin_counts():
    """Sign-in throttle counts live in the cache: no test sees another's."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def admin(org_a):
    user = make_user("admin@a.example")
    Membership.objects.create(user=user, organization=org_a, role=Role.ADMIN)
    return user
