"""Outbound signing (SPEC §5.4): the headers verify with the ``standardwebhooks`` library, the
secret is shown once, rotation signs with both secrets for 24 hours."""

from __future__ import annotations

import base64
import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connectors.models import DestinationSettings
from connectors.services import connector_create, connector_duplicate
from osmos import crypto
from osmos.outbound import signing

LIST = "/api/v1/connectors/"
SCHEMA = [{"name": "id", "type": "integer", "nullable": False}]


def now_seconds() -> int:
    return int(timezone.now().timestamp())


# --- the primitives -----------------------------------------------------------------------------


def test_a_new_secret_is_whsec_and_32_random_bytes():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert signing.new_secret() != secret


def test_headers_verify_with_the_standardwebhooks_library():
    secret = signing.new_secret()
    body = json.dumps([{"id": 1}, {"id": 2}]).encode()
    headers = signing.signature_headers(
        msg_id="run-1:chunk-7", timestamp=now_seconds(), body=body, secrets=[secret]
    )
    assert Webhook(secret).verify(body, headers) == [{"id": 1}, {"id": 2}]
    assert headers["webhook-id"] == "run-1:chunk-7"


def test_a_changed_body_or_another_secret_fails_verification():
    secret = signing.new_secret()
    body = b'{"id": 1}'
    headers = signing.signature_headers(
        msg_id="m", timestamp=now_seconds(), body=body, secrets=[secret]
    )
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"id": 2}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


def test_two_secrets_give_two_signatures_each_verifies_alone():
    new, old = signing.new_secret(), signing.new_secret()
    body = b'[{"id": 1}]'
    headers = signing.signature_headers(
        msg_id="m", timestamp=now_seconds(), body=body, secrets=[new, old]
    )
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)


def test_a_file_body_is_signed_like_its_bytes_and_left_where_it_was():
    secret = signing.new_secret()
    body = b"[" + b",".join(b'{"id": %d}' % i for i in range(200_000)) + b"]"
    spooled = io.BytesIO(body)
    from_file = signing.signature_headers(
        msg_id="m", timestamp=1_700_000_000, body=spooled, secrets=[secret]
    )
    assert spooled.tell() == 0
    from_bytes = signing.signature_headers(
        msg_id="m", timestamp=1_700_000_000, body=body, secrets=[secret]
    )
    assert from_file == from_bytes


def test_signing_without_a_secret_is_an_error():
    with pytest.raises(ValueError, match="secret"):
        signing.signature_headers(msg_id="m", timestamp=1, body=b"{}", secrets=[])


# --- the destination's secret through the API ---------------------------------------------------


@pytest.fixture
def destination_body(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return {
        "name": "CRM",
        "direction": "destination",
        "schema": SCHEMA,
        "destination": {"url": "http://127.0.0.1:9/hook", "signing": {"enabled": True}},
    }


def stored_secrets(connector_id, *, at=None) -> list[str]:
    settings_ = DestinationSettings.objects.get(connector_id=connector_id)
    return settings_.signing_secrets(now=at or timezone.now())


def test_enabling_signing_shows_the_secret_once(api_a, destination_body):
    created = api_a.post(LIST, destination_body, format="json")
    assert created.status_code == 201, created.json()
    signing_ = created.json()["destination"]["signing"]
    assert signing_["enabled"] is True
    secret = signing_["secret"]
    assert secret.startswith("whsec_")
    assert stored_secrets(created.json()["id"]) == [secret]
    shown = api_a.get(f"{LIST}{created.json()['id']}/")
    assert shown.json()["destination"]["signing"] == {"enabled": True}
    assert secret not in api_a.get(LIST).content.decode()
    row = DestinationSettings.objects.get(connector_id=created.json()["id"])
    assert secret not in row.signing_secret_encrypted  # encrypted at rest


def test_enabling_by_patch_issues_a_secret_and_disabling_forgets_it(api_a, destination_body):
    destination_body["destination"]["signing"] = {"enabled": False}
    created = api_a.post(LIST, destination_body, format="json").json()
    assert created["destination"]["signing"] == {"enabled": False}
    path = f"{LIST}{created['id']}/"
    enabled = api_a.patch(path, {"destination": {"signing": {"enabled": True}}}, format="json")
    assert enabled.status_code == 200, enabled.json()
    secret = enabled.json()["destination"]["signing"]["secret"]
    again = api_a.patch(path, {"destination": {"signing": {"enabled": True}}}, format="json")
    assert "secret" not in again.json()["destination"]["signing"]  # unchanged: not shown again
    api_a.patch(path, {"destination": {"signing": {"enabled": False}}}, format="json")
    assert stored_secrets(created["id"]) == []
    enabled_again = api_a.patch(
        path, {"destination": {"signing": {"enabled": True}}}, format="json"
    )
    assert enabled_again.json()["destination"]["signing"]["secret"] != secret


@pytest.mark.parametrize("value", [True, {"enabled": "yes"}, {"enabled": True, "secret": "x"}])
def test_a_malformed_signing_setting_is_400(api_a, destination_body, value):
    destination_body["destination"]["signing"] = value
    response = api_a.post(LIST, destination_body, format="json")
    assert response.status_code == 400
    assert "signing" in response.json()["destination"]


def test_rotation_signs_with_both_secrets_for_24_hours(api_a, destination_body):
    created = api_a.post(LIST, destination_body, format="json").json()
    old = created["destination"]["signing"]["secret"]
    rotated = api_a.post(f"{LIST}{created['id']}/rotate-signing-secret/")
    assert rotated.status_code == 200, rotated.json()
    signing_ = rotated.json()["destination"]["signing"]
    new = signing_["secret"]
    assert new != old
    assert signing_["previous_secret_expires_at"]
    live = stored_secrets(created["id"])
    assert live == [new, old]
    body = b'[{"id": 1}]'
    headers = signing.signature_headers(
        msg_id="k", timestamp=now_seconds(), body=body, secrets=live
    )
    Webhook(old).verify(body, headers)  # a receiver not switched yet
    Webhook(new).verify(body, headers)  # a receiver already switched
    later = timezone.now() + timedelta(hours=24, seconds=1)
    assert stored_secrets(created["id"], at=later) == [new]


def test_rotating_without_signing_enabled_or_on_a_source_is_400(api_a, destination_body):
    destination_body["destination"]["signing"] = {"enabled": False}
    created = api_a.post(LIST, destination_body, format="json").json()
    response = api_a.post(f"{LIST}{created['id']}/rotate-signing-secret/")
    assert response.status_code == 400
    assert "enable" in response.json()["detail"]
    source = api_a.post(
        LIST, {"name": "S", "direction": "source", "schema": SCHEMA}, format="json"
    ).json()
    assert api_a.post(f"{LIST}{source['id']}/rotate-signing-secret/").status_code == 400


def test_a_member_cannot_rotate_and_an_outsider_gets_404(
    api_a, member_client, outsider_client, destination_body
):
    created = api_a.post(LIST, destination_body, format="json").json()
    path = f"{LIST}{created['id']}/rotate-signing-secret/"
    assert member_client.post(path).status_code == 403
    assert outsider_client.post(path).status_code == 404
    assert stored_secrets(created["id"]) == [created["destination"]["signing"]["secret"]]


def test_a_duplicated_destination_signs_with_its_own_secret(org_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    original = connector_create(
        organization=org_a,
        name="CRM",
        direction="destination",
        fields=SCHEMA,
        destination={"url": "http://127.0.0.1:9/", "signing": {"enabled": True}},
    )
    copy = connector_duplicate(connector=original.connector, name="CRM copy")
    assert copy.signing_secret is not None
    assert copy.signing_secret != original.signing_secret
    assert stored_secrets(copy.connector.pk) == [copy.signing_secret]
    assert (
        crypto.decrypt(
            DestinationSettings.objects.get(connector=original.connector).signing_secret_encrypted
        )
        == original.signing_secret
    )


@pytest.mark.parametrize("name", ["webhook-signature", "Webhook-Id", "webhook-timestamp"])
def test_the_signature_headers_cannot_be_configured_as_static_headers(
    api_a, destination_body, name
):
    destination_body["destination"]["headers"] = [{"name": name, "value": "v1,forged"}]
    response = api_a.post(LIST, destination_body, format="json")
    assert response.status_code == 400
    assert "set by osmos" in response.json()["destination"]["headers"][0]["message"]
