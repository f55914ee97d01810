"""Notifications (SPEC §5.5): one per incident, in-app, by e-mail, never across tenants."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from connectors.notify import destination_health_notify
from connectors.services import connector_create
from osmos.notifications.delivery import notification_fan_out
from osmos.notifications.models import Event, Notification
from osmos.notifications.services import email_recipients, notify
from osmos.tenancy.models import Membership, Role
from pipelines.models import Pipeline, Run, RunState
from pipelines.notify import run_outcome_notify

SCHEMA = [{"name": "id", "type": "integer", "nullable": False}]


def events(organization) -> list[str]:
    return list(
        Notification.objects.filter(organization=organization)
        .order_by("created_at")
        .values_list("event", flat=True)
    )


def health(org, connector_id, state, detail="503 Service Unavailable"):
    destination_health_notify(
        organization_id=org.pk,
        connector_id=connector_id,
        name="Orders API",
        state=state,
        detail=detail,
    )


def test_a_destination_failing_for_hours_is_one_notification_and_one_recovery(org_a):
    destination = uuid.uuid4()
    for _ in range(5):  # the engine reports the state every time it sees it
        health(org_a, destination, "failing")
    health(org_a, destination, "healthy")
    health(org_a, destination, "healthy")
    assert events(org_a) == [Event.DESTINATION_FAILING, Event.DESTINATION_HEALTHY]
    health(org_a, destination, "failing")  # a new incident notifies again
    assert events(org_a)[-1] == Event.DESTINATION_FAILING


def test_a_paused_destination_recovers_with_one_notification(org_a):
    destination = uuid.uuid4()
    health(org_a, destination, "failing")
    health(org_a, destination, "paused", "410 Gone")
    health(org_a, destination, "paused", "410 Gone")
    health(org_a, destination, "healthy")
    assert events(org_a) == [
        Event.DESTINATION_FAILING,
        Event.DESTINATION_PAUSED,
        Event.DESTINATION_HEALTHY,
    ]


def test_a_healthy_destination_that_was_never_failing_says_nothing(org_a):
    health(org_a, uuid.uuid4(), "healthy")
    assert events(org_a) == []


@pytest.fixture
def pipeline(org_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    source = connector_create(organization=org_a, name="src", direction="source", fields=SCHEMA)
    destination = connector_create(
        organization=org_a,
        name="dst",
        direction="destination",
        fields=SCHEMA,
        destination={"url": "http://127.0.0.1:9/hook"},
    )
    return Pipeline.objects.create(
        organization=org_a,
        name="Orders",
        source=source.connector,
        destination=destination.connector,
    )


def finished_run(pipeline, state: str, failed: int = 0) -> Run:
    return Run.objects.create(
        organization=pipeline.organization,
        pipeline=pipeline,
        trigger="schedule",
        state=state,
        records_total=10,
        records_delivered=10 - failed,
        records_failed=failed,
    )


def test_failing_runs_of_a_pipeline_notify_once_until_one_succeeds(org_a, pipeline):
    for _ in range(3):
        run_outcome_notify(run=finished_run(pipeline, RunState.FAILED, 10), pipeline_name="Orders")
    assert events(org_a) == [Event.RUN_FAILED]
    first = Notification.objects.get(organization=org_a)
    assert "10 of 10 records failed" in first.message
    run_outcome_notify(run=finished_run(pipeline, RunState.SUCCEEDED), pipeline_name="Orders")
    assert len(events(org_a)) == 1  # success closes the incident quietly
    partial = finished_run(pipeline, RunState.PARTIALLY_FAILED, 2)
    run_outcome_notify(run=partial, pipeline_name="Orders")
    assert events(org_a) == [Event.RUN_FAILED, Event.RUN_PARTIALLY_FAILED]
    assert Notification.objects.filter(subject_id=partial.pk).count() == 1


def test_email_goes_to_owners_and_admins_who_did_not_opt_out(org_a, owner, member, owner_client):
    admin = get_user_model().objects.create_user(
        username="admin@a.example", email="admin@a.example"
    )
    Membership.objects.create(user=admin, organization=org_a, role=Role.ADMIN)
    assert email_recipients(organization_id=org_a.pk) == ["admin@a.example", "owner@a.example"]
    owner_client.post("/notifications/email/", {})  # the box unticked: opt out
    assert email_recipients(organization_id=org_a.pk) == ["admin@a.example"]
    owner_client.post("/notifications/email/", {"email": "on"})
    assert "owner@a.example" in email_recipients(organization_id=org_a.pk)


def test_the_fan_out_mails_each_recipient_separately(org_a, owner):
    n = notify(
        organization_id=org_a.pk,
        event=Event.DESTINATION_FAILING,
        subject_type="connector",
        subject_id=uuid.uuid4(),
        message="Destination “Orders API” is failing: 503",
    )
    notification_fan_out(notification_id=n.pk)
    assert [m.to for m in mail.outbox] == [["owner@a.example"]]
    assert "Orders API" in mail.outbox[0].body
    assert "A destination is failing" in mail.outbox[0].subject


def _notification(org, message="Destination “X” is failing") -> Notification:
    return notify(
        organization_id=org.pk,
        event=Event.DESTINATION_FAILING,
        subject_type="connector",
        subject_id=uuid.uuid4(),
        message=message,
    )


def test_api_lists_the_organizations_notifications_in_the_spec_shape(org_a, member_client):
    n = _notification(org_a)
    body = member_client.get("/api/v1/notifications/").json()
    assert body["count"] == 1
    assert body["results"][0] == {
        "id": str(n.pk),
        "event": "destination.failing",
        "subject": {"type": "connector", "id": str(n.subject_id)},
        "message": n.message,
        "created_at": body["results"][0]["created_at"],
        "read": False,
    }


def test_a_member_marks_notifications_read(org_a, member_client):
    first, second = _notification(org_a), _notification(org_a)
    answer = member_client.post(
        "/api/v1/notifications/read/", {"ids": [str(first.pk)]}, format="json"
    )
    assert answer.json() == {"marked": 1}
    unread = member_client.get("/api/v1/notifications/?unread=true").json()["results"]
    assert [n["id"] for n in unread] == [str(second.pk)]
    assert member_client.post("/api/v1/notifications/read/", {}, format="json").json() == {
        "marked": 1
    }


def test_another_organizations_notification_is_404_and_never_listed(org_a, org_b, outsider_client):
    n = _notification(org_a, message="secret-name-of-a")
    assert outsider_client.get(f"/api/v1/notifications/{n.pk}/").status_code == 404
    assert outsider_client.get("/api/v1/notifications/").json()["count"] == 0
    outsider_client.post("/api/v1/notifications/read/", {}, format="json")
    n.refresh_from_db()
    assert n.read_at is None
    page = outsider_client.get("/notifications/")
    assert page.status_code == 200
    assert "secret-name-of-a" not in page.content.decode()


def test_the_page_lists_notifications_with_an_unread_badge(org_a, owner_client):
    _notification(org_a, message="Destination “Billing” is failing")
    page = owner_client.get("/notifications/").content.decode()
    assert "Destination “Billing” is failing" in page
    assert 'aria-label="1 unread"' in page
    owner_client.post("/notifications/read/")
    assert 'aria-label="1 unread"' not in owner_client.get("/notifications/").content.decode()


def test_marking_read_on_the_page_needs_a_post(org_a, owner_client):
    assert owner_client.get("/notifications/read/").status_code == 405
