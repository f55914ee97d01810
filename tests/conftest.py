"""Shared fixtures: an owner and a member of organization A, and an outsider in B.

Fixtures only; they are built from ``tests/support`` (tests import helpers from there).
"""

from __future__ import annotations

import dramatiq
import pytest
from dramatiq.worker import _WorkerMiddleware
from rest_framework.test import APIClient

from osmos.tenancy.models import Role
from tests.support.actors import flush_everything
from tests.support.factories import api_client, make_member, make_org, make_token


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """Before any fixture is torn down (the database's table flush among them): this
    process's destination gates give back their slots and their maintenance pauses. A pass
    still writing to the gate tables while a transactional test's TRUNCATE ran was a deadlock
    PostgreSQL resolved by failing the flush, and the next test inherited the rows."""
    from osmos.outbound.gate import close_all

    close_all()


@pytest.fixture(autouse=True)
def _forget_stopped_workers():
    """No test inherits the messages or the workers of another.

    Every ``dramatiq.Worker`` adds a middleware to the broker that ``stop()`` leaves behind;
    when a queue is declared later (a module imported by a later test), each stopped worker
    left in the list starts a consumer that takes messages into its dead work queue. And a
    worker stopped while holding messages leaves them counted as unfinished. Either way a
    later ``broker.join`` waits for messages nobody will process (``flush_everything``)."""
    yield
    broker = dramatiq.get_broker()
    flush_everything(broker)
    broker.middleware[:] = [
        m
        for m in broker.middleware
        if not isinstance(m, _WorkerMiddleware) or any(t.is_alive() for t in m.worker.workers)
    ]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Real password hashing costs ~0.5 s a user; tests don't need its strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def org_a(db):
    return make_org("Org A", "org-a")


@pytest.fixture
def org_b(db):
    return make_org("Org B", "org-b")


@pytest.fixture
def owner(org_a):
    return make_member(org_a, "owner@a.example", Role.OWNER)


@pytest.fixture
def member(org_a):
    return make_member(org_a, "member@a.example", Role.MEMBER)


@pytest.fixture
def outsider(org_b):
    return make_member(org_b, "outsider@b.example", Role.OWNER)


@pytest.fixture
def owner_client(owner) -> APIClient:
    return api_client(user=owner)


@pytest.fixture
def member_client(member) -> APIClient:
    return api_client(user=member)


@pytest.fixture
def outsider_client(outsider) -> APIClient:
    return api_client(user=outsider)


@pytest.fixture
def token_a(org_a) -> str:
    return make_token(org_a, "integration A")


@pytest.fixture
def token_b(org_b) -> str:
    return make_token(org_b, "integration B")


@pytest.fixture
def api_a(token_a) -> APIClient:
    """An API client authenticated with a token of organization A."""
    return api_client(token=token_a)


@pytest.fixture
def api_b(token_b) -> APIClient:
    return api_client(token=token_b)
