"""Shared fixtures: an owner and a member of organization A, and an outsider in B."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from osmos.tenancy.models import Membership, Organization, Role
from osmos.tenancy.services import api_token_create


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Real password hashing costs ~0.5 s a user; tests don't need its strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(email: str):
    return get_user_model().objects.create_user(username=email, email=email, password="pw-" + email)


@pytest.fixture
def org_a(db):
    return Organization.objects.create(name="Org A", slug="org-a")


@pytest.fixture
def org_b(db):
    return Organization.objects.create(name="Org B", slug="org-b")


@pytest.fixture
def owner(org_a):
    user = make_user("owner@a.example")
    Membership.objects.create(user=user, organization=org_a, role=Role.OWNER)
    return user


@pytest.fixture
def member(org_a):
    user = make_user("member@a.example")
    Membership.objects.create(user=user, organization=org_a, role=Role.MEMBER)
    return user


@pytest.fixture
def outsider(org_b):
    user = make_user("outsider@b.example")
    Membership.objects.create(user=user, organization=org_b, role=Role.OWNER)
    return user


def _client_for(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def owner_client(owner):
    return _client_for(owner)


@pytest.fixture
def member_client(member):
    return _client_for(member)


@pytest.fixture
def outsider_client(outsider):
    return _client_for(outsider)


@pytest.fixture
def token_a(org_a):
    return api_token_create(organization=org_a, name="integration A").secret


@pytest.fixture
def token_b(org_b):
    return api_token_create(organization=org_b, name="integration B").secret


@pytest.fixture
def api_a(token_a) -> APIClient:
    """An API client authenticated with a token of organization A."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_a}")
    return client


@pytest.fixture
def api_b(token_b) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_b}")
    return client
