"""Schedulers as real processes: two at once, one of them killed mid-tick and restarted.

Many pipelines are due at the same moment on a yearly schedule, so each must get exactly
one scheduled run however the schedulers race or die (a killed scheduler's transaction is
rolled back by the database; the survivor, or the restarted one, takes those pipelines).
"""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from pipelines.models import Pipeline, Run, Trigger
from pipelines.services import pipeline_create
from tests.reliability.processes import Children, child_env, wait_for
from tests.support.factories import build_world

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.reliability]

PIPELINES = 120


@pytest.fixture
def children(tmp_path):
    group = Children(tmp_path)
    yield group
    group.kill_all()


def _due_pipelines(organization, world) -> list[Pipeline]:
    pipelines = [
        pipeline_create(
            organization=organization,
            name=f"Yearly {i}",
            source_id=world.source.id,
            destination_id=world.destination.id,
            schedule={"cron": "0 0 1 1 *", "timezone": "UTC"},
        )
        for i in range(PIPELINES)
    ]
    Pipeline.objects.filter(name__startswith="Yearly").update(
        next_run_at=timezone.now() - timedelta(seconds=5)
    )
    return pipelines


def test_two_schedulers_and_a_killed_one_give_exactly_one_run_per_tick(org_a, member, children):
    world = build_world(org_a, member_user=member)
    _due_pipelines(org_a, world)
    # No broker is shared with these processes: runs are created and stay queued.
    env = child_env(SCHEDULER_INTERVAL_SECONDS="0.05", DRAMATIQ_BROKER_URL="")
    first = children.start(["run_scheduler"], env, "scheduler")
    children.start(["run_scheduler"], env, "scheduler")
    # Kill the first as soon as it has created some runs (it is mid-tick), then restart it.
    wait_for(
        lambda: Run.objects.filter(trigger=Trigger.SCHEDULE).exists(),
        timeout=60,
        what="the first scheduled run",
        every=0.01,
    )
    children.kill(first, signal.SIGKILL)
    children.start(["run_scheduler"], env, "scheduler")
    now = timezone.now()
    try:
        wait_for(
            lambda: (
                not Pipeline.objects.filter(
                    name__startswith="Yearly", next_run_at__lte=now
                ).exists()
            ),
            timeout=90,
            what="every due pipeline to be scheduled",
        )
        time.sleep(1)  # a few more ticks of all schedulers: nothing more may be created
    except AssertionError:
        raise AssertionError(children.logs()) from None
    runs = dict(
        Run.objects.filter(trigger=Trigger.SCHEDULE)
        .values_list("pipeline__name")
        .annotate(n=Count("id"))
    )
    assert len(runs) == PIPELINES
    assert set(runs.values()) == {1}, {k: v for k, v in runs.items() if v != 1}
    next_year = timezone.now().year + 1
    assert {p.next_run_at.year for p in Pipeline.objects.filter(name__startswith="Yearly")} == {
        next_year
    }
