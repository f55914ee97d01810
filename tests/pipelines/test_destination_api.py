"""The destination's delivery settings (§3.2), its health and the resume action (§5.2)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from connectors.models import DestinationHealth, HealthState
from pipelines.models import Run, RunState
from tests.support.delivery import make_destination, make_pipeline, make_source

pytestmark = pytest.mark.django_db


@pytest.fixture
def destination(org_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return make_destination(org_a, "http://127.0.0.1:9/hook")


def _pause(destination) -> None:
    DestinationHealth.objects.create(
        connector=destination,
        state=HealthState.PAUSED,
        since=timezone.now(),
        last_error="The destination answered 410 Gone.",
    )


def _url(destination) -> str:
    return f"/api/v1/connectors/{destination.id}/"


def test_the_delivery_settings_are_saved_and_shown(owner_client, destination):
    response = owner_client.patch(
        _url(destination),
        {
            "destination": {
                "rate_limit_per_second": 2.5,
                "max_concurrency": 3,
                "response_format": "per_record",
            }
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    shown = response.json()["destination"]
    assert (shown["rate_limit_per_second"], shown["max_concurrency"]) == (2.5, 3)
    assert shown["response_format"] == "per_record"
    assert shown["health"]["state"] == "healthy"
    response = owner_client.patch(
        _url(destination), {"destination": {"rate_limit_per_second": None}}, format="json"
    )
    assert response.json()["destination"]["rate_limit_per_second"] is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("rate_limit_per_second", 0.05),
        ("rate_limit_per_second", 10_001),
        ("rate_limit_per_second", "5"),
        ("rate_limit_per_second", True),
        ("max_concurrency", 0),
        ("max_concurrency", 65),
        ("max_concurrency", 2.5),
        ("response_format", "xml"),
    ],
)
def test_out_of_range_delivery_settings_are_refused_by_field(owner_client, destination, key, value):
    response = owner_client.patch(_url(destination), {"destination": {key: value}}, format="json")
    assert response.status_code == 400
    assert key in response.json()["destination"]


def test_a_paused_destination_shows_its_health_and_is_resumed_by_a_manager(
    owner_client, org_a, destination, django_capture_on_commit_callbacks
):
    _pause(destination)
    source = make_source(org_a)
    pipeline = make_pipeline(org_a, source, destination)
    waiting = Run.objects.create(
        organization=org_a, pipeline=pipeline, trigger="api", state=RunState.WAITING
    )
    health = owner_client.get(_url(destination)).json()["destination"]["health"]
    assert health["state"] == "paused"
    assert "410" in health["last_error"]

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"{_url(destination)}resume/")
    assert response.status_code == 200, response.json()
    assert response.json()["destination"]["health"]["state"] == "healthy"
    waiting.refresh_from_db()
    assert waiting.waiting_until is not None  # due now, and enqueued
    assert waiting.enqueued_at is not None


def test_resuming_a_destination_that_is_not_paused_is_a_conflict(owner_client, destination):
    response = owner_client.post(f"{_url(destination)}resume/")
    assert response.status_code == 409
    assert response.json()["detail"] == "This destination is not paused."


def test_a_member_cannot_resume_a_destination(member_client, destination):
    _pause(destination)
    assert member_client.post(f"{_url(destination)}resume/").status_code == 403
    assert DestinationHealth.objects.get(connector=destination).state == HealthState.PAUSED


def test_another_organization_cannot_resume_a_destination(outsider_client, destination):
    _pause(destination)
    assert outsider_client.post(f"{_url(destination)}resume/").status_code == 404
    assert DestinationHealth.objects.get(connector=destination).state == HealthState.PAUSED


def test_a_source_cannot_be_resumed(owner_client, org_a):
    source = make_source(org_a)
    response = owner_client.post(f"/api/v1/connectors/{source.id}/resume/")
    assert response.status_code == 400
