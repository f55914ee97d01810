"""Ingest URL rotation with a grace period (SPEC §4), and secrets that never follow a URL to
another host (SPEC §3.2)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from connectors.models import DestinationSettings, SourceSettings
from osmos import crypto

LIST = "/api/v1/connectors/"
SCHEMA = [{"name": "id", "type": "integer", "nullable": False}]


def path_of(ingest_url: str) -> str:
    return "/ingest/" + ingest_url.rstrip("/").rsplit("/", 1)[1] + "/"


def post(path: str) -> int:
    client = Client()
    return client.post(path, data=b'{"id": 1}', content_type="application/json").status_code


@pytest.fixture
def source(api_a):
    data = api_a.post(
        LIST, {"name": "S", "direction": "source", "schema": SCHEMA}, format="json"
    ).json()
    return data["id"], path_of(data["source"]["ingest_url"])


def rotate(api, connector_id, body=None):
    return api.post(f"{LIST}{connector_id}/rotate-token/", body, format="json")


def test_rotation_without_grace_stops_the_old_url_at_once(api_a, source):
    connector_id, old = source
    response = rotate(api_a, connector_id)
    assert response.status_code == 200
    assert "previous_url_expires_at" not in response.json()["source"]
    assert post(old) == 404
    assert post(path_of(response.json()["source"]["ingest_url"])) == 200


def test_the_old_url_works_during_the_grace_period_only(api_a, source):
    connector_id, old = source
    response = rotate(api_a, connector_id, {"grace_hours": 48})
    assert response.status_code == 200, response.json()
    new = path_of(response.json()["source"]["ingest_url"])
    expires = response.json()["source"]["previous_url_expires_at"]
    assert expires
    assert post(old) == 200
    assert post(new) == 200
    shown = api_a.get(f"{LIST}{connector_id}/").json()["source"]
    assert shown["previous_url_expires_at"] == expires
    row = SourceSettings.objects.get(connector_id=connector_id)
    assert row.previous_token_expires_at - timezone.now() > timedelta(hours=47)
    row.previous_token_expires_at = timezone.now() - timedelta(seconds=1)
    row.save()
    assert post(old) == 404
    assert post(new) == 200
    assert "previous_url_expires_at" not in api_a.get(f"{LIST}{connector_id}/").json()["source"]


def test_a_second_rotation_keeps_only_the_latest_previous_url(api_a, source):
    connector_id, first = source
    second = path_of(rotate(api_a, connector_id, {"grace_hours": 1}).json()["source"]["ingest_url"])
    third = path_of(rotate(api_a, connector_id, {"grace_hours": 1}).json()["source"]["ingest_url"])
    assert post(first) == 404
    assert post(second) == 200
    assert post(third) == 200


@pytest.mark.parametrize("body", [{"grace_hours": 169}, {"grace_hours": -1}, {"grace_hours": "2"},
                                  {"grace_hours": True}, {"hours": 2}, [1]])  # fmt: skip
def test_an_invalid_grace_is_400_and_rotates_nothing(api_a, source, body):
    connector_id, old = source
    response = rotate(api_a, connector_id, body)
    assert response.status_code == 400
    assert response.json()["detail"]
    assert post(old) == 200


def test_a_member_cannot_rotate_and_an_outsider_gets_404(
    api_a, member_client, outsider_client, source
):
    connector_id, old = source
    assert rotate(member_client, connector_id, {"grace_hours": 2}).status_code == 403
    assert rotate(outsider_client, connector_id, {"grace_hours": 2}).status_code == 404
    assert post(old) == 200


# --- secrets never follow a URL ------------------------------------------------------------------


@pytest.fixture
def destination(api_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    body = {
        "name": "D",
        "direction": "destination",
        "schema": SCHEMA,
        "destination": {
            "url": "http://127.0.0.1:8001/hook",
            "headers": [
                {"name": "Authorization", "value": "Bearer very-secret-1234"},
                {"name": "X-Api-Key", "value": "key-abcdefgh"},
            ],
            "signing": {"enabled": True},
        },
    }
    data = api_a.post(LIST, body, format="json").json()
    return data


def patch(api, connector_id, destination):
    return api.patch(f"{LIST}{connector_id}/", {"destination": destination}, format="json")


def test_another_host_without_the_header_values_is_400_naming_them(api_a, destination):
    response = patch(api_a, destination["id"], {"url": "http://127.0.0.2:8001/hook"})
    assert response.status_code == 400
    message = response.json()["destination"]["headers"][0]["message"]
    assert "Authorization" in message
    assert "X-Api-Key" in message
    stored = DestinationSettings.objects.get(connector_id=destination["id"])
    assert stored.url == "http://127.0.0.1:8001/hook"


def test_another_host_with_masked_values_is_400(api_a, destination):
    masked = destination["destination"]["headers"]
    response = patch(api_a, destination["id"], {"url": "http://127.0.0.2:8001/", "headers": masked})
    assert response.status_code == 400
    errors = response.json()["destination"]["headers"]
    assert [(e["index"], e["field"]) for e in errors] == [(0, "value"), (1, "value")]
    assert "Authorization" in errors[0]["message"]
    assert "X-Api-Key" in errors[1]["message"]


def test_another_port_is_another_host(api_a, destination):
    response = patch(api_a, destination["id"], {"url": "http://127.0.0.1:8002/hook"})
    assert response.status_code == 400


def test_another_host_with_new_values_is_saved_and_resets_the_signing_secret(api_a, destination):
    old_secret = destination["destination"]["signing"]["secret"]
    headers = [{"name": "Authorization", "value": "Bearer for-the-new-host-99"}]
    response = patch(
        api_a, destination["id"], {"url": "http://127.0.0.2:8001/hook", "headers": headers}
    )
    assert response.status_code == 200, response.json()
    new_secret = response.json()["destination"]["signing"]["secret"]
    assert new_secret != old_secret
    stored = DestinationSettings.objects.get(connector_id=destination["id"])
    assert stored.signing_secrets(now=timezone.now()) == [new_secret]  # no grace for the old one
    assert stored.decrypted_headers() == [("Authorization", "Bearer for-the-new-host-99")]


def test_the_same_host_keeps_the_masked_values(api_a, destination):
    masked = destination["destination"]["headers"]
    response = patch(
        api_a, destination["id"], {"url": "http://127.0.0.1:8001/other?x=1", "headers": masked}
    )
    assert response.status_code == 200, response.json()
    assert "secret" not in response.json()["destination"]["signing"]
    stored = DestinationSettings.objects.get(connector_id=destination["id"])
    assert crypto.decrypt(stored.headers_encrypted[0]["value"]) == "Bearer very-secret-1234"


def test_the_edit_page_asks_for_the_header_values_again(owner, destination):
    from django.test import Client

    client = Client()
    client.force_login(owner)
    masked = destination["destination"]["headers"]
    page = client.post(
        f"/connectors/{destination['id']}/edit/",
        {
            "name": "D",
            "url": "http://127.0.0.2:8001/hook",
            "method": "POST",
            "write_mode": "batch",
            "batch_size": "250000",
            "timeout_seconds": "30",
            "header_name": [h["name"] for h in masked],
            "header_value": [h["value"] for h in masked],
        },
    )
    assert page.status_code == 400
    html = page.content.decode()
    assert "Enter the value of Authorization again" in html
    assert "Enter the value of X-Api-Key again" in html
    stored = DestinationSettings.objects.get(connector_id=destination["id"])
    assert stored.url == "http://127.0.0.1:8001/hook"
