"""The organization notification webhook (SPEC §5.5): set by owners and admins, every
notification POSTed and signed (verified here with the ``standardwebhooks`` library),
retried with backoff, its failures visible, never failing the notification itself."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction
from django.test import Client
from standardwebhooks.webhooks import Webhook

from osmos.notifications.models import Notification, NotificationWebhook
from osmos.notifications.services import notify
from osmos.notifications.webhook import webhook_idempotency_key
from tests.support.actors import running_worker
from tests.support.sink import Sink, first, status
from tests.support.waiting import eventually

URL = "/api/v1/notifications/webhook/"


@pytest.fixture(autouse=True)
def _loopback(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.NOTIFICATION_WEBHOOK_RETRY_SCHEDULE = (0.2, 0.2, 0.2)
    settings.NOTIFICATION_WEBHOOK_TIMEOUT_SECONDS = 5.0


def _notify(organization) -> Notification:
    with transaction.atomic():
        return notify(
            organization_id=organization.pk,
            event="run.failed",
            subject_type="run",
            subject_id=uuid.uuid4(),
            message="Pipeline “Orders”: a run failed",
        )


@pytest.mark.django_db
def test_only_owners_and_admins_see_or_set_the_webhook(owner_client, member_client, member):
    assert owner_client.get(URL).status_code == 404  # none yet
    created = owner_client.put(URL, {"url": "https://hooks.example.com/osmos"}, format="json")
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    again = owner_client.put(URL, {"url": "https://hooks.example.com/v2"}, format="json")
    assert again.status_code == 200
    assert "secret" not in again.json()
    assert owner_client.get(URL).json()["url"] == "https://hooks.example.com/v2"

    for call in (
        lambda: member_client.get(URL),
        lambda: member_client.put(URL, {"url": "https://evil.example.com/"}, format="json"),
        lambda: member_client.delete(URL),
        lambda: member_client.post(URL + "rotate-secret/"),
    ):
        assert call().status_code == 403
    page = Client()
    page.force_login(member)
    assert (
        page.post("/notifications/webhook/", {"url": "https://evil.example.com/"}).status_code
        == 403
    )
    assert page.post("/notifications/webhook/rotate/").status_code == 403
    assert "hooks.example.com" not in page.get("/notifications/").content.decode()
    assert NotificationWebhook.objects.get().url == "https://hooks.example.com/v2"

    bad = owner_client.put(URL, {"url": "ftp://hooks.example.com/"}, format="json")
    assert bad.status_code == 400
    rotated = owner_client.post(URL + "rotate-secret/")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] not in (secret, None)
    assert owner_client.delete(URL).status_code == 204
    assert owner_client.delete(URL).status_code == 404


@pytest.mark.django_db
def test_another_organization_never_sees_or_changes_the_webhook(owner_client, outsider_client):
    owner_client.put(URL, {"url": "https://hooks.example.com/a-secret-path"}, format="json")
    for client_answer in (outsider_client.get(URL), outsider_client.post(URL + "rotate-secret/")):
        assert client_answer.status_code in (403, 404)
        assert "a-secret-path" not in client_answer.content.decode()
    assert outsider_client.delete(URL).status_code in (403, 404)
    assert "a-secret-path" not in outsider_client.get("/notifications/").content.decode()
    assert NotificationWebhook.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_every_notification_is_posted_signed_and_a_failing_sink_is_retried(
    org_a, owner_client, owner
):
    page = Client()
    page.force_login(owner)
    with Sink(first(2, status(503, body=b'{"error": "down for a bit"}'))) as sink, running_worker():
        created = owner_client.put(URL, {"url": sink.url}, format="json")
        secret = created.json()["secret"]
        notification = _notify(org_a)
        assert Notification.objects.filter(pk=notification.pk).exists()

        # The first attempt fails: its status and error are on the settings page.
        eventually(lambda: NotificationWebhook.objects.get().last_status == 503)
        html = page.get("/notifications/").content.decode()
        assert "failing" in html
        assert "503" in html

        # It recovers: the third attempt is accepted.
        eventually(lambda: NotificationWebhook.objects.get().last_status == 200, timeout=20)
        requests = sink.requests
    webhook = NotificationWebhook.objects.get()
    assert webhook.last_error == ""
    assert webhook.last_success_at is not None
    assert [r.answered for r in requests] == [503, 503, 200]
    # The same message each time: one webhook-id, every signature valid.
    assert {r.header("webhook-id") for r in requests} == {webhook_idempotency_key(notification.pk)}
    for request in requests:
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["id"] == str(notification.pk)
        assert payload["event"] == "run.failed"
        assert payload["subject"]["type"] == "run"
    assert "failing" not in page.get("/notifications/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_after_a_rotation_both_secrets_verify(org_a, owner_client):
    with Sink() as sink, running_worker():
        old = owner_client.put(URL, {"url": sink.url}, format="json").json()["secret"]
        new = owner_client.post(URL + "rotate-secret/").json()["secret"]
        _notify(org_a)
        eventually(lambda: sink.requests)
        request = sink.requests[0]
    assert len(request.header("webhook-signature").split(" ")) == 2
    Webhook(new).verify(request.body, request.headers)
    Webhook(old).verify(request.body, request.headers)


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_webhook_never_fails_the_notification(org_a, owner_client, settings):
    settings.NOTIFICATION_WEBHOOK_RETRY_SCHEDULE = (0.1,)
    with running_worker():
        owner_client.put(URL, {"url": "http://127.0.0.1:9/refused"}, format="json")
        notification = _notify(org_a)
        eventually(lambda: NotificationWebhook.objects.get().last_error)
    assert Notification.objects.filter(pk=notification.pk).exists()
    webhook = NotificationWebhook.objects.get()
    assert webhook.last_status is None
    assert "127.0.0.1" in webhook.last_error
