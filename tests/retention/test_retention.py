"""Retention (SPEC §5.6) with a backdated clock: what goes, what must stay."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from connectors.services import connector_create
from ingest.models import Record
from osmos.notifications.models import Notification
from osmos.notifications.services import notify
from pipelines.models import (
    Pipeline,
    RecordFailure,
    RequestLog,
    RequestTemplate,
    Run,
    RunState,
    SyncMode,
)
from pipelines.retention import passed_sequence, retention_purge

SCHEMA = [{"name": "id", "type": "integer", "nullable": False}]
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _retention(settings):
    settings.RETENTION_DAYS = 30
    settings.RETENTION_BATCH_ROWS = 100
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def source(org_a):
    return connector_create(
        organization=org_a, name="src", direction="source", fields=SCHEMA
    ).connector


@pytest.fixture
def destination(org_a):
    return connector_create(
        organization=org_a,
        name="dst",
        direction="destination",
        fields=SCHEMA,
        destination={"url": "http://127.0.0.1:9/hook"},
    ).connector


def add_records(source, first: int, last: int, *, age: timedelta) -> None:
    received = timezone.now() - age
    Record.objects.bulk_create(
        Record(
            organization_id=source.organization_id,
            connector=source,
            sequence=n,
            received_at=received,
            data={"id": n},
        )
        for n in range(first, last + 1)
    )


def pipeline_at(source, destination, *, cursor: int, name="p", mode=SyncMode.INCREMENTAL):
    return Pipeline.objects.create(
        organization_id=source.organization_id,
        name=name,
        source=source,
        destination=destination,
        cursor=cursor,
        sync_mode=mode,
    )


def sequences(source) -> list[int]:
    return list(
        Record.objects.filter(connector=source)
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )


def test_old_records_every_pipeline_passed_are_purged_and_the_samples_stay(source, destination):
    add_records(source, 1, 500, age=40 * DAY)
    add_records(source, 501, 600, age=1 * DAY)  # recent: stays although passed
    pipeline_at(source, destination, cursor=400, name="fast")
    pipeline_at(source, destination, cursor=550, name="faster")
    report = retention_purge()
    assert report.complete
    # 51..400: passed by both and old. 1..50 are the samples; 401.. not passed by "fast".
    assert report.deleted["records"] == 350
    assert sequences(source) == [*range(1, 51), *range(401, 601)]


def test_a_source_without_pipelines_keeps_every_record(source):
    add_records(source, 1, 300, age=400 * DAY)
    retention_purge()
    assert len(sequences(source)) == 300


def test_records_of_a_run_still_in_progress_are_kept(source, destination, org_a):
    add_records(source, 1, 300, age=40 * DAY)
    pipeline = pipeline_at(source, destination, cursor=300)
    Run.objects.create(
        organization=org_a,
        pipeline=pipeline,
        trigger="manual",
        state=RunState.RUNNING,
        sequence_from=120,
        sequence_to=300,
    )
    assert passed_sequence(source.pk) == 120
    retention_purge()
    assert sequences(source)[50:51] == [121]


def test_a_full_sync_pipeline_has_passed_what_its_last_finished_run_covered(
    source, destination, org_a
):
    add_records(source, 1, 300, age=40 * DAY)
    pipeline = pipeline_at(source, destination, cursor=0, mode=SyncMode.FULL)
    assert passed_sequence(source.pk) == 0
    Run.objects.create(
        organization=org_a,
        pipeline=pipeline,
        trigger="manual",
        state=RunState.SUCCEEDED,
        sequence_from=0,
        sequence_to=200,
        finished_at=timezone.now(),
    )
    assert passed_sequence(source.pk) == 200


def _old_run(org_a, pipeline, *, finished_days_ago: int) -> Run:
    run = Run.objects.create(
        organization=org_a,
        pipeline=pipeline,
        trigger="manual",
        state=RunState.PARTIALLY_FAILED,
        sequence_from=0,
        sequence_to=300,
        finished_at=timezone.now() - finished_days_ago * DAY,
    )
    RecordFailure.objects.create(
        organization=org_a, run=run, sequence=77, record={"id": 77}, reason="HTTP 400"
    )
    RequestLog.objects.bulk_create(
        RequestLog(
            organization=org_a,
            run=run,
            sequence_from=i,
            sequence_to=i,
            record_count=1,
            attempt=1,
            status=200,
            duration_ms=3,
        )
        for i in range(1, 251)
    )
    RequestTemplate.objects.create(
        organization=org_a,
        run=run,
        valid_from=run.finished_at,
        method="POST",
        url="https://crm.example.com/hook",
        write_mode="single",
        headers=[["Authorization", "••••1234"]],
    )
    return run


def test_logs_and_failures_of_old_runs_go_and_records_they_can_retry_stay(
    source, destination, org_a
):
    add_records(source, 1, 300, age=60 * DAY)
    pipeline = pipeline_at(source, destination, cursor=300)
    recent = _old_run(org_a, pipeline, finished_days_ago=2)
    old = _old_run(org_a, pipeline, finished_days_ago=45)
    report = retention_purge()
    assert report.deleted["request_logs"] == 250
    assert report.deleted["request_templates"] == 1
    assert list(RequestTemplate.objects.values_list("run_id", flat=True)) == [recent.pk]
    assert report.deleted["failures"] == 1
    assert RequestLog.objects.filter(run=old).count() == 0
    assert RequestLog.objects.filter(run=recent).count() == 250
    assert RecordFailure.objects.filter(run=recent).count() == 1
    # Record 77 may still be retried from the recent run's failure: it stays.
    assert 77 in sequences(source)
    assert 78 not in sequences(source)


def test_old_notifications_are_purged(org_a):
    old = notify(
        organization_id=org_a.pk,
        event="destination.failing",
        subject_type="connector",
        subject_id=uuid.uuid4(),
        message="old",
    )
    Notification.objects.filter(pk=old.pk).update(created_at=timezone.now() - 31 * DAY)
    notify(
        organization_id=org_a.pk,
        event="destination.failing",
        subject_type="connector",
        subject_id=uuid.uuid4(),
        message="new",
    )
    retention_purge()
    assert list(Notification.objects.values_list("message", flat=True)) == ["new"]


def test_a_backlog_is_worked_off_in_batches_within_the_time_budget(source, destination):
    add_records(source, 1, 1050, age=40 * DAY)
    pipeline_at(source, destination, cursor=1050)
    assert retention_purge(budget_seconds=0).complete is False
    assert len(sequences(source)) == 1050  # nothing done without a budget
    report = retention_purge(budget_seconds=60)
    assert report.complete
    assert report.deleted["records"] == 1000  # ten batches of 100
    assert len(sequences(source)) == 50


def test_the_scheduler_tick_runs_retention_once_a_minute(org_a, monkeypatch):
    import math

    from pipelines import scheduler

    old = notify(
        organization_id=org_a.pk,
        event="destination.failing",
        subject_type="connector",
        subject_id=uuid.uuid4(),
        message="old",
    )
    Notification.objects.filter(pk=old.pk).update(created_at=timezone.now() - 31 * DAY)
    monkeypatch.setattr(scheduler, "_last_housekeeping", -math.inf)
    assert scheduler.scheduler_tick().rows_purged == 1
    assert not Notification.objects.exists()
    notify(
        organization_id=org_a.pk,
        event="destination.failing",
        subject_type="connector",
        subject_id=uuid.uuid4(),
        message="old too",
    )
    Notification.objects.update(created_at=timezone.now() - 31 * DAY)
    assert scheduler.scheduler_tick().rows_purged == 0  # not again within the minute
