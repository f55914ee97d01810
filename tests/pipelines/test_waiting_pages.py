"""The run page shows a waiting run (next attempt, attempt number, last error); the
destination page shows its health and a manager resumes a paused one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from connectors.models import DestinationHealth, HealthState
from pipelines.models import Run, RunChunk, RunState
from tests.support.delivery import make_destination, make_pipeline, make_source

pytestmark = pytest.mark.django_db


@pytest.fixture
def destination(org_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return make_destination(org_a, "http://127.0.0.1:9/hook")


@pytest.fixture
def waiting_run(org_a, destination):
    pipeline = make_pipeline(org_a, make_source(org_a), destination)
    run = Run.objects.create(
        organization=org_a,
        pipeline=pipeline,
        trigger="api",
        state=RunState.WAITING,
        waiting_until=timezone.now() + timedelta(minutes=10),
        last_error="Attempt 3 failed: The destination answered 503 Service Unavailable.",
        records_total=50,
        planned_at=timezone.now(),
    )
    RunChunk.objects.create(
        organization=org_a,
        run=run,
        index=0,
        sequence_from=0,
        sequence_to=50,
        record_count=50,
        idempotency_key="k",
        attempts=3,
    )
    return run


def _pause(destination) -> None:
    DestinationHealth.objects.create(
        connector=destination,
        state=HealthState.PAUSED,
        since=timezone.now(),
        last_error="The destination answered 410 Gone.",
    )


def test_the_run_page_shows_a_waiting_run_with_its_next_attempt(
    owner_client, waiting_run, settings
):
    settings.DELIVERY_RETRY_SCHEDULE = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)
    page = owner_client.get(f"/pipelines/runs/{waiting_run.pk}/").content.decode()
    assert "waiting" in page
    assert 'id="run-waiting"' in page
    assert waiting_run.waiting_until.strftime("%Y-%m-%d %H:%M") in page
    assert 'id="waiting-attempt">4</span> of 11' in page
    assert "503 Service Unavailable" in page
    assert "% of the records accounted for so far" in page
    # It keeps polling while it waits.
    status = owner_client.get(f"/pipelines/runs/{waiting_run.pk}/status/")
    assert status.status_code == 200
    assert "HX-Refresh" not in status
    assert 'hx-trigger="every 1s"' in status.content.decode()


def test_the_run_page_of_a_run_waiting_for_a_paused_destination_says_so(owner_client, waiting_run):
    Run.objects.filter(pk=waiting_run.pk).update(waiting_until=None)
    page = owner_client.get(f"/pipelines/runs/{waiting_run.pk}/").content.decode()
    assert "Waiting for the destination to be resumed" in page


def test_the_destination_page_shows_its_health_and_a_resume_button_to_managers(
    owner_client, member_client, destination
):
    page = owner_client.get(f"/connectors/{destination.pk}/").content.decode()
    assert 'id="destination-health"' in page
    assert "healthy" in page
    assert 'id="resume-destination"' not in page
    _pause(destination)
    page = owner_client.get(f"/connectors/{destination.pk}/").content.decode()
    assert "paused" in page
    assert "410 Gone" in page
    assert 'id="resume-destination"' in page
    assert (
        'id="resume-destination"'
        not in member_client.get(f"/connectors/{destination.pk}/").content.decode()
    )
    block = owner_client.get(f"/connectors/{destination.pk}/health/")
    assert block.status_code == 200
    assert "410 Gone" in block.content.decode()


def test_a_manager_resumes_a_paused_destination_from_its_page(
    owner_client, destination, django_capture_on_commit_callbacks
):
    _pause(destination)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/connectors/{destination.pk}/resume/")
    assert response.status_code == 302
    assert DestinationHealth.objects.get(connector=destination).state == HealthState.HEALTHY


def test_a_member_cannot_resume_a_destination_from_its_page(member_client, destination):
    _pause(destination)
    assert member_client.post(f"/connectors/{destination.pk}/resume/").status_code == 403
    assert DestinationHealth.objects.get(connector=destination).state == HealthState.PAUSED


def test_another_organization_sees_neither_the_health_nor_the_resume(outsider_client, destination):
    _pause(destination)
    assert outsider_client.get(f"/connectors/{destination.pk}/health/").status_code == 404
    assert outsider_client.post(f"/connectors/{destination.pk}/resume/").status_code == 404
    assert DestinationHealth.objects.get(connector=destination).state == HealthState.PAUSED


def test_the_destination_form_saves_the_delivery_settings(owner_client, destination):
    page = owner_client.get(f"/connectors/{destination.pk}/edit/").content.decode()
    assert 'name="rate_limit_per_second"' in page
    form = {
        "name": destination.name,
        "url": "http://127.0.0.1:9/hook",
        "method": "POST",
        "write_mode": "batch",
        "batch_size": "20",
        "timeout_seconds": "30",
        "rate_limit_per_second": "2.5",
        "max_concurrency": "3",
        "response_format": "per_record",
        "header_name": "Authorization",
        "header_value": destination.destination.masked_headers()[0]["value"],
    }
    response = owner_client.post(f"/connectors/{destination.pk}/edit/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    destination.destination.refresh_from_db()
    saved = destination.destination
    assert (saved.rate_limit_per_second, saved.max_concurrency) == (2.5, 3)
    assert saved.response_format == "per_record"
    form["max_concurrency"] = "65"
    page = owner_client.post(f"/connectors/{destination.pk}/edit/", form).content.decode()
    assert "Must be a whole number from 1 to 64." in page
