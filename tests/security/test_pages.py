"""The security settings on the connector pages: signing (enable, show once, rotate, disable),
sender verification (secret shown once), ingest URL rotation with a grace period."""

from __future__ import annotations

import pytest
from django.test import Client

from connectors.models import DestinationSettings, SourceSettings
from connectors.services import connector_create

SCHEMA = [{"name": "id", "type": "integer", "nullable": False}]


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def destination(org_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return connector_create(
        organization=org_a,
        name="CRM",
        direction="destination",
        fields=SCHEMA,
        destination={"url": "http://127.0.0.1:9/"},
    ).connector


@pytest.fixture
def source(org_a):
    return connector_create(organization=org_a, name="S", direction="source", fields=SCHEMA)


def secret_of(connector_id) -> list[str]:
    from django.utils import timezone

    return DestinationSettings.objects.get(connector_id=connector_id).signing_secrets(
        now=timezone.now()
    )


def test_enable_show_once_rotate_and_disable_signing(owner, destination):
    client = logged_in(owner)
    page = f"/connectors/{destination.pk}/"
    signing = f"/connectors/{destination.pk}/signing/"
    assert "Enable signing" in client.get(page).content.decode()
    shown = client.post(signing, {"action": "enable"}, follow=True).content.decode()
    (secret,) = secret_of(destination.pk)
    assert secret in shown
    assert "shown only this once" in shown
    again = client.get(page).content.decode()
    assert secret not in again
    assert "Rotate signing secret" in again
    rotated = client.post(signing, {"action": "rotate"}, follow=True).content.decode()
    new, old = secret_of(destination.pk)
    assert old == secret
    assert new in rotated
    assert "the previous secret signs too" in rotated
    client.post(signing, {"action": "disable"})
    assert secret_of(destination.pk) == []


def test_a_member_cannot_change_signing_and_an_outsider_gets_404(member, outsider, destination):
    signing = f"/connectors/{destination.pk}/signing/"
    assert logged_in(member).post(signing, {"action": "enable"}).status_code == 403
    assert logged_in(outsider).post(signing, {"action": "enable"}).status_code == 404
    assert secret_of(destination.pk) == []


def test_sender_verification_is_set_on_the_page_and_its_secret_shown_once(owner, source):
    client = logged_in(owner)
    path = f"/connectors/{source.connector.pk}/verification/"
    shown = client.post(
        path, {"scheme": "hmac_sha256", "header": "X-Hub-Signature-256"}, follow=True
    ).content.decode()
    row = SourceSettings.objects.get(connector=source.connector)
    assert row.verification_header == "X-Hub-Signature-256"
    assert row.verification_secret() in shown
    assert (
        row.verification_secret()
        not in client.get(f"/connectors/{source.connector.pk}/").content.decode()
    )
    refused = client.post(path, {"scheme": "rsa"}, follow=True).content.decode()
    assert "Must be one of" in refused


def test_a_member_cannot_set_verification_and_an_outsider_gets_404(member, outsider, source):
    path = f"/connectors/{source.connector.pk}/verification/"
    assert logged_in(member).post(path, {"scheme": "standard_webhooks"}).status_code == 403
    assert logged_in(outsider).post(path, {"scheme": "standard_webhooks"}).status_code == 404


def test_rotation_with_grace_says_until_when_the_old_url_works(owner, source):
    client = logged_in(owner)
    old = f"/ingest/{source.ingest_token}/"
    page = client.post(
        f"/connectors/{source.connector.pk}/rotate/", {"grace_hours": "24"}, follow=True
    ).content.decode()
    assert "The previous ingest URL still works until" in page
    assert "keeps working for 24 h" in page
    posted = Client().post(old, data=b'{"id": 1}', content_type="application/json")
    assert posted.status_code == 200
