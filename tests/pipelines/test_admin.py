"""Admin for support staff: pipelines and runs with counts, re-run and cancel, read-only logs."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from pipelines.models import RecordFailure, RequestLog, Run, RunState
from tests.support.delivery import SECRET, make_destination, make_pipeline, make_source

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    user = get_user_model().objects.create_superuser("staff@osmos.example", "s@o.example", "x")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def run(org_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    destination = make_destination(org_a, "http://127.0.0.1:9/hook")
    pipeline = make_pipeline(org_a, make_source(org_a), destination)
    run = Run.objects.create(
        organization=org_a,
        pipeline=pipeline,
        trigger="api",
        state=RunState.PARTIALLY_FAILED,
        records_total=50,
        records_delivered=49,
        records_failed=1,
        requests_made=2,
        finished_at="2025-01-01T00:00:00Z",
    )
    RecordFailure.objects.create(
        organization=org_a,
        run=run,
        sequence=3,
        record={"id": 3},
        reason="answered 422",
        http_status=422,
    )
    RequestLog.objects.create(
        organization=org_a,
        run=run,
        sequence_from=1,
        sequence_to=50,
        record_count=50,
        attempt=1,
        status=422,
        duration_ms=12,
    )
    return run


@pytest.mark.parametrize("model", ["pipeline", "run", "recordfailure", "requestlog"])
def test_changelists_load_and_never_show_header_values(staff_client, run, model):
    response = staff_client.get(f"/admin/pipelines/{model}/")
    assert response.status_code == 200
    assert SECRET not in response.content.decode()


def test_run_list_shows_counts_and_filters_by_state(staff_client, run):
    body = staff_client.get("/admin/pipelines/run/?state__exact=partially_failed").content.decode()
    assert str(run.id) in body
    assert "49" in body
    body = staff_client.get("/admin/pipelines/run/?state__exact=succeeded").content.decode()
    assert str(run.id) not in body


def test_run_page_is_read_only_and_links_to_its_logs(staff_client, run):
    response = staff_client.get(f"/admin/pipelines/run/{run.id}/change/")
    body = response.content.decode()
    assert response.status_code == 200
    assert f"run__id__exact={run.id}" in body
    assert 'name="_save"' not in body


def test_request_log_rows_cannot_be_changed_or_deleted(staff_client, run):
    log = RequestLog.objects.get()
    response = staff_client.post(
        f"/admin/pipelines/requestlog/{log.pk}/change/", {"status": 200, "duration_ms": 1}
    )
    assert response.status_code == 403
    assert staff_client.post(f"/admin/pipelines/requestlog/{log.pk}/delete/").status_code == 403
    assert RequestLog.objects.get().status == 422


def test_rerun_action_queues_a_new_run_of_the_pipeline(staff_client, run):
    staff_client.post(
        "/admin/pipelines/run/", {"action": "rerun", "_selected_action": [str(run.id)]}
    )
    new = Run.objects.exclude(pk=run.pk).get()
    assert (new.pipeline_id, new.trigger, new.state) == (run.pipeline_id, "manual", "queued")


def test_cancel_action_cancels_only_active_runs(staff_client, run):
    active = Run.objects.create(organization=run.organization, pipeline=run.pipeline, trigger="api")
    staff_client.post(
        "/admin/pipelines/run/",
        {"action": "cancel", "_selected_action": [str(run.id), str(active.id)]},
    )
    assert Run.objects.get(pk=active.pk).state == RunState.CANCELLED
    assert Run.objects.get(pk=run.pk).state == RunState.PARTIALLY_FAILED
