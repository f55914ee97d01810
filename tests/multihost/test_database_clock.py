"""Leases, heartbeats and the scheduler's sweeps decide on the database's clock, in-process:
this process's wall clock is moved 5 minutes (time-machine) while PostgreSQL's is not.

The multi-host test (test_clock_skew.py) proves the same with real processes on hosts; these
are its quick, narrow companions. PostgreSQL only: on SQLite (one host) the host's clock is
the database's.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.utils import timezone

from pipelines.clock import database_now, on_database_clock
from pipelines.leases import Heartbeat, run_acquire
from pipelines.models import Run
from pipelines.scheduler import scheduler_tick
from pipelines.services import run_create
from tests.support.factories import build_world

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="PostgreSQL only: on SQLite (one host) the host's clock is the database's",
    ),
]

FIVE_MINUTES = timedelta(minutes=5)


def _off(by: timedelta):
    """This process's wall clock ``by`` off (ticking), the database's untouched."""
    return time_machine.travel(timezone.now() + by, tick=True)


@pytest.fixture
def run(org_a, member):
    world = build_world(org_a, member_user=member)
    return run_create(pipeline=world.pipeline, trigger="api")


def test_database_now_is_the_databases_time_whatever_the_hosts_clock():
    with _off(FIVE_MINUTES):
        host, db = timezone.now(), database_now()
    assert abs((host - db).total_seconds() - 300) < 5


def test_a_delay_computed_on_the_hosts_clock_is_kept_on_the_databases():
    with _off(-FIVE_MINUTES):
        until = on_database_clock(timezone.now() + timedelta(seconds=30))
    assert abs((until - database_now()).total_seconds() - 30) < 5


@pytest.mark.parametrize("skew", [FIVE_MINUTES, -FIVE_MINUTES], ids=["ahead", "behind"])
def test_a_live_lease_is_neither_taken_nor_swept_by_a_host_whose_clock_is_off(run, skew):
    token = run_acquire(run.pk)
    assert token is not None
    with _off(skew):
        Heartbeat(run_id=run.pk, token=token).beat()  # stamped with the database's time
        assert run_acquire(run.pk) is None  # a duplicate message on the skewed host
        assert scheduler_tick().runs_resumed == 0
    run.refresh_from_db()
    assert (run.lease_token, run.attempts, run.resumes) == (token, 1, 0)
    assert abs((run.heartbeat_at - database_now()).total_seconds()) < 5


@pytest.mark.parametrize("skew", [FIVE_MINUTES, -FIVE_MINUTES], ids=["ahead", "behind"])
def test_a_dead_lease_is_swept_and_taken_by_a_host_whose_clock_is_off(run, skew):
    token = run_acquire(run.pk)
    dead = database_now() - timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS + 1)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=dead)
    with _off(skew):
        assert scheduler_tick().runs_resumed == 1
        taken = run_acquire(run.pk)
    run.refresh_from_db()
    assert taken is not None
    assert taken != token
    assert (run.lease_token, run.attempts, run.resumes) == (taken, 2, 1)
