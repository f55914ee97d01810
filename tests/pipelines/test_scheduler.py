"""The scheduler: due runs from cron schedules, one run per tick, skipped ticks, the loop."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection

from pipelines.models import Pipeline, Run, RunState
from pipelines.scheduler import scheduler_loop, scheduler_tick
from pipelines.services import pipeline_update
from tests.support.delivery import make_destination, make_pipeline, make_source

EVERY_DAY_7_PARIS = {"cron": "0 7 * * *", "timezone": "Europe/Paris"}


@pytest.fixture
def scheduled(org_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    source = make_source(org_a)
    destination = make_destination(org_a, "http://127.0.0.1:9/hook")
    return make_pipeline(org_a, source, destination, schedule=EVERY_DAY_7_PARIS)


def _due(pipeline, when):
    Pipeline.objects.filter(pk=pipeline.pk).update(next_run_at=when)


@pytest.mark.django_db
def test_next_run_is_seven_in_paris_summer_and_winter(scheduled):
    for now, expected in [
        (datetime(2025, 7, 1, 12, tzinfo=UTC), datetime(2025, 7, 2, 5, tzinfo=UTC)),
        (datetime(2025, 1, 1, 12, tzinfo=UTC), datetime(2025, 1, 2, 6, tzinfo=UTC)),
    ]:
        _due(scheduled, now - timedelta(minutes=1))
        scheduler_tick(now)
        scheduled.refresh_from_db()
        assert scheduled.next_run_at == expected
        Run.objects.update(state=RunState.SUCCEEDED, finished_at=now)


@pytest.mark.django_db
def test_a_due_pipeline_gets_one_scheduled_run_and_its_next_time(scheduled):
    now = datetime(2025, 3, 10, 6, 0, 5, tzinfo=UTC)
    _due(scheduled, datetime(2025, 3, 10, 6, 0, tzinfo=UTC))
    report = scheduler_tick(now)
    assert report.runs_created == 1
    run = Run.objects.get()
    assert (run.trigger, run.state, run.sequence_to) == ("schedule", "queued", 50)
    scheduled.refresh_from_db()
    assert scheduled.next_run_at == datetime(2025, 3, 11, 6, 0, tzinfo=UTC)
    assert scheduler_tick(now).runs_created == 0


@pytest.mark.django_db
def test_pipelines_not_due_disabled_or_manual_get_no_run(org_a, scheduled):
    now = datetime(2025, 3, 10, 6, 0, tzinfo=UTC)
    _due(scheduled, now + timedelta(seconds=1))
    assert scheduler_tick(now).runs_created == 0
    pipeline_update(pipeline=scheduled, enabled=False)
    Pipeline.objects.filter(pk=scheduled.pk).update(next_run_at=now - timedelta(days=1))
    assert scheduler_tick(now).runs_created == 0
    pipeline_update(pipeline=scheduled, enabled=True, schedule=None)
    assert Pipeline.objects.get(pk=scheduled.pk).next_run_at is None
    assert scheduler_tick(now).runs_created == 0
    assert not Run.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("state", [RunState.QUEUED, RunState.RUNNING, RunState.WAITING])
def test_a_tick_is_skipped_while_the_previous_run_is_still_going(scheduled, state):
    now = datetime(2025, 3, 10, 6, 0, tzinfo=UTC)
    _due(scheduled, now)
    scheduler_tick(now)
    Run.objects.update(state=state)
    later = now + timedelta(days=1)
    _due(scheduled, later)
    report = scheduler_tick(later)
    assert (report.runs_created, report.ticks_skipped) == (0, 1)
    assert Run.objects.count() == 1
    scheduled.refresh_from_db()
    assert scheduled.next_run_at == later + timedelta(days=1)  # the tick is dropped, not queued


@pytest.mark.django_db
def test_missed_ticks_give_one_run_not_a_backlog(scheduled):
    now = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
    _due(scheduled, now - timedelta(days=10))
    assert scheduler_tick(now).runs_created == 1
    scheduled.refresh_from_db()
    assert scheduled.next_run_at > now


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_ticking_at_once_create_one_run_per_tick(scheduled):
    now = datetime(2025, 3, 10, 6, 0, tzinfo=UTC)
    for tick in range(3):
        when = now + timedelta(days=tick)
        _due(scheduled, when)
        Run.objects.update(state=RunState.SUCCEEDED, finished_at=when)
        barrier = threading.Barrier(4)
        created = []

        def tick_once(at=when, barrier=barrier, created=created):
            barrier.wait()
            try:
                created.append(scheduler_tick(at).runs_created)
            finally:
                connection.close()

        threads = [threading.Thread(target=tick_once) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(created) == [0, 0, 0, 1]
    assert Run.objects.filter(trigger="schedule").count() == 3


@pytest.mark.django_db(transaction=True)
def test_the_loop_ticks_until_stopped(scheduled, settings):
    settings.SCHEDULER_INTERVAL_SECONDS = 0.05
    _due(scheduled, datetime(2025, 1, 1, tzinfo=UTC))
    stop = threading.Event()
    thread = threading.Thread(target=scheduler_loop, kwargs={"stop": stop})
    thread.start()
    try:
        for _ in range(100):
            if Run.objects.exists():
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert Run.objects.filter(trigger="schedule").count() == 1


@pytest.mark.django_db
def test_run_scheduler_once_runs_one_tick(scheduled, capsys):
    _due(scheduled, datetime(2025, 1, 1, tzinfo=UTC))
    call_command("run_scheduler", "--once")
    assert "runs_created=1" in capsys.readouterr().out
    assert Run.objects.count() == 1


def test_the_embedded_mode_runs_the_scheduler_loop(settings):
    assert "pipelines.scheduler.scheduler_loop" in settings.EMBEDDED_BACKGROUND_LOOPS


@pytest.mark.django_db
def test_a_pipeline_with_an_unusable_stored_schedule_is_unscheduled_without_blocking_others(
    org_a, scheduled
):
    broken = make_pipeline(
        org_a, scheduled.source, scheduled.destination, name="Broken", schedule=EVERY_DAY_7_PARIS
    )
    now = datetime(2025, 3, 10, 6, 0, tzinfo=UTC)
    Pipeline.objects.update(next_run_at=now)
    Pipeline.objects.filter(pk=broken.pk).update(schedule_timezone="Gone/Away")
    assert scheduler_tick(now).runs_created == 1
    assert Pipeline.objects.get(pk=broken.pk).next_run_at is None
    assert Run.objects.get().pipeline_id == scheduled.pk
