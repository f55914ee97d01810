"""Inbound sender verification (SPEC §4) with real signatures made by the ``standardwebhooks``
library and by ``hmac``: a missing, wrong or stale signature is 401 and stores nothing."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from standardwebhooks.webhooks import Webhook

from connectors.models import SourceSettings
from ingest.models import Record
from osmos.outbound.signing import signature_headers

LIST = "/api/v1/connectors/"
SCHEMA = [{"name": "id", "type": "integer", "nullable": False}]
BODY = json.dumps([{"id": 1}, {"id": 2}]).encode()


@pytest.fixture
def client():
    return Client(enforce_csrf_checks=True)


def create_source(api, verification: dict) -> tuple[str, str, dict]:
    """(connector id, ingest path, source JSON) of a new source with this verification."""
    response = api.post(
        LIST,
        {
            "name": "Hooks",
            "direction": "source",
            "schema": SCHEMA,
            "source": {"verification": verification},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    path = "/ingest/" + data["source"]["ingest_url"].rstrip("/").rsplit("/", 1)[1] + "/"
    return data["id"], path, data["source"]


def post(client, path, body=BODY, **headers):
    return client.post(path, data=body, content_type="application/json", **headers)


def stored(connector_id) -> int:
    return Record.objects.filter(connector_id=connector_id).count()


def sw_headers(secret: str, body: bytes, *, msg_id="msg_1", at: datetime | None = None) -> dict:
    """Headers as a sender using the standardwebhooks library makes them (WSGI keys)."""
    at = at or datetime.now(tz=UTC)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body.decode())
    return {
        "HTTP_WEBHOOK_ID": msg_id,
        "HTTP_WEBHOOK_TIMESTAMP": str(int(at.timestamp())),
        "HTTP_WEBHOOK_SIGNATURE": signature,
    }


# --- standard_webhooks ----------------------------------------------------------------------------


def test_a_standard_webhooks_source_shows_its_secret_once(api_a):
    connector_id, _path, source = create_source(api_a, {"scheme": "standard_webhooks"})
    secret = source["verification"]["secret"]
    assert secret.startswith("whsec_")
    shown = api_a.get(f"{LIST}{connector_id}/").json()["source"]["verification"]
    assert shown == {"scheme": "standard_webhooks"}
    row = SourceSettings.objects.get(connector_id=connector_id)
    assert secret not in row.verification_secret_encrypted


def test_a_request_signed_by_the_library_is_stored(api_a, client):
    connector_id, path, source = create_source(api_a, {"scheme": "standard_webhooks"})
    response = post(client, path, **sw_headers(source["verification"]["secret"], BODY))
    assert response.status_code == 200, response.json()
    assert stored(connector_id) == 2


def test_a_request_signed_with_both_old_and_new_secrets_is_accepted(api_a, client):
    _connector_id, path, source = create_source(api_a, {"scheme": "standard_webhooks"})
    other = sw_headers("whsec_" + base64.b64encode(b"x" * 32).decode(), BODY)
    mine = sw_headers(source["verification"]["secret"], BODY)
    mine["HTTP_WEBHOOK_SIGNATURE"] = (
        other["HTTP_WEBHOOK_SIGNATURE"] + " " + mine["HTTP_WEBHOOK_SIGNATURE"]
    )
    assert post(client, path, **mine).status_code == 200


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda h: {}, id="no headers"),
        pytest.param(lambda h: {**h, "HTTP_WEBHOOK_SIGNATURE": "v1,AAAA"}, id="wrong"),
        pytest.param(lambda h: {**h, "HTTP_WEBHOOK_SIGNATURE": "v1,%%%"}, id="not base64"),
        pytest.param(lambda h: {**h, "HTTP_WEBHOOK_ID": "msg_other"}, id="other id"),
        pytest.param(lambda h: {**h, "HTTP_WEBHOOK_TIMESTAMP": "soon"}, id="bad timestamp"),
        pytest.param(lambda h: {**h, "HTTP_WEBHOOK_SIGNATURE": "v1," + "A" * 9000}, id="huge"),
    ],
)
def test_a_missing_or_wrong_signature_is_401_and_stores_nothing(api_a, client, spoil):
    connector_id, path, source = create_source(api_a, {"scheme": "standard_webhooks"})
    headers = spoil(sw_headers(source["verification"]["secret"], BODY))
    response = post(client, path, **headers)
    assert response.status_code == 401
    assert "Nothing was stored" in response.json()["detail"]
    assert stored(connector_id) == 0


def test_a_changed_body_is_401(api_a, client):
    connector_id, path, source = create_source(api_a, {"scheme": "standard_webhooks"})
    headers = sw_headers(source["verification"]["secret"], BODY)
    assert post(client, path, body=b'[{"id": 666}]', **headers).status_code == 401
    assert stored(connector_id) == 0


def test_a_signature_older_than_5_minutes_is_401(api_a, client):
    connector_id, path, source = create_source(api_a, {"scheme": "standard_webhooks"})
    stale = datetime.now(tz=UTC) - timedelta(minutes=6)
    response = post(client, path, **sw_headers(source["verification"]["secret"], BODY, at=stale))
    assert response.status_code == 401
    assert "5 minutes" in response.json()["detail"]
    assert stored(connector_id) == 0
    recent = datetime.now(tz=UTC) - timedelta(minutes=4)
    headers = sw_headers(source["verification"]["secret"], BODY, at=recent)
    assert post(client, path, **headers).status_code == 200


def test_a_gzip_body_is_verified_as_sent_compressed(api_a, client):
    connector_id, path, source = create_source(api_a, {"scheme": "standard_webhooks"})
    compressed = gzip.compress(BODY)
    secret = source["verification"]["secret"]
    # The library signs text: a sender signing the wire bytes uses the same HMAC over bytes.
    at = int(datetime.now(tz=UTC).timestamp())
    wire = signature_headers(msg_id="m", timestamp=at, body=compressed, secrets=[secret])
    headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in wire.items()}
    response = post(client, path, body=compressed, HTTP_CONTENT_ENCODING="gzip", **headers)
    assert response.status_code == 200, response.json()
    signed_plain = signature_headers(msg_id="m", timestamp=at, body=BODY, secrets=[secret])
    headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in signed_plain.items()}
    response = post(client, path, body=compressed, HTTP_CONTENT_ENCODING="gzip", **headers)
    assert response.status_code == 401
    assert stored(connector_id) == 2


# --- hmac_sha256 ----------------------------------------------------------------------------------


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def shopify_signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_hmac_sha256_accepts_github_and_shopify_styles(api_a, client):
    verification = {"scheme": "hmac_sha256", "header": "X-Hub-Signature-256"}
    connector_id, path, source = create_source(api_a, verification)
    secret = source["verification"]["secret"]
    assert source["verification"]["header"] == "X-Hub-Signature-256"
    github = post(client, path, HTTP_X_HUB_SIGNATURE_256=github_signature(secret, BODY))
    assert github.status_code == 200, github.json()
    bare_hex = hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    assert post(client, path, HTTP_X_HUB_SIGNATURE_256=bare_hex).status_code == 200
    shopify = post(client, path, HTTP_X_HUB_SIGNATURE_256=shopify_signature(secret, BODY))
    assert shopify.status_code == 200
    assert stored(connector_id) == 6


def test_hmac_sha256_with_the_users_own_secret(api_a, client):
    own = "shpss_0123456789abcdef0123"
    _connector_id, path, source = create_source(
        api_a, {"scheme": "hmac_sha256", "header": "X-Shopify-Hmac-Sha256", "secret": own}
    )
    assert "secret" not in source["verification"]  # the user knows it: never echoed
    response = post(client, path, HTTP_X_SHOPIFY_HMAC_SHA256=shopify_signature(own, BODY))
    assert response.status_code == 200


@pytest.mark.parametrize("value", [None, "sha256=00", "sha256=" + "0" * 64, "garbage!"])
def test_hmac_sha256_missing_or_wrong_is_401(api_a, client, value):
    connector_id, path, _source = create_source(api_a, {"scheme": "hmac_sha256"})
    headers = {} if value is None else {"HTTP_X_SIGNATURE": value}
    response = post(client, path, **headers)
    assert response.status_code == 401
    assert "X-Signature" in response.json()["detail"]
    assert stored(connector_id) == 0


def test_hmac_sha256_of_another_secret_is_401(api_a, client):
    connector_id, path, _source = create_source(api_a, {"scheme": "hmac_sha256"})
    response = post(client, path, HTTP_X_SIGNATURE=github_signature("whsec_other", BODY))
    assert response.status_code == 401
    assert stored(connector_id) == 0


# --- settings through the API ---------------------------------------------------------------------


def test_patching_the_scheme_issues_a_new_secret_and_none_turns_it_off(api_a, client):
    connector_id, path, _source = create_source(api_a, {"scheme": "none"})
    assert post(client, path).status_code == 200
    changed = api_a.patch(
        f"{LIST}{connector_id}/",
        {"source": {"verification": {"scheme": "hmac_sha256"}}},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    secret = changed.json()["source"]["verification"]["secret"]
    assert post(client, path).status_code == 401
    assert post(client, path, HTTP_X_SIGNATURE=github_signature(secret, BODY)).status_code == 200
    header_only = api_a.patch(
        f"{LIST}{connector_id}/",
        {"source": {"verification": {"scheme": "hmac_sha256", "header": "X-Sig"}}},
        format="json",
    )
    assert "secret" not in header_only.json()["source"]["verification"]  # same secret kept
    assert post(client, path, HTTP_X_SIG=github_signature(secret, BODY)).status_code == 200
    api_a.patch(
        f"{LIST}{connector_id}/", {"source": {"verification": {"scheme": "none"}}}, format="json"
    )
    assert post(client, path).status_code == 200


@pytest.mark.parametrize(
    "verification",
    [
        {"scheme": "rsa"},
        {"scheme": "hmac_sha256", "header": "Bad Header"},
        {"scheme": "standard_webhooks", "secret": "mine-mine-mine-mine"},
        {"scheme": "hmac_sha256", "secret": "short"},
        {"scheme": "none", "extra": 1},
        "standard_webhooks",
    ],
)
def test_invalid_verification_is_400(api_a, verification):
    response = api_a.post(
        LIST,
        {
            "name": "S",
            "direction": "source",
            "schema": SCHEMA,
            "source": {"verification": verification},
        },
        format="json",
    )
    assert response.status_code == 400
    assert "source" in response.json()


def test_a_destination_takes_no_source_settings(api_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    body = {
        "name": "D",
        "direction": "destination",
        "schema": SCHEMA,
        "destination": {"url": "http://127.0.0.1:9/"},
        "source": {"verification": {"scheme": "none"}},
    }
    assert api_a.post(LIST, body, format="json").status_code == 400


def test_a_member_cannot_change_verification_and_an_outsider_gets_404(
    api_a, member_client, outsider_client
):
    connector_id, _path, _source = create_source(api_a, {"scheme": "none"})
    body = {"source": {"verification": {"scheme": "standard_webhooks"}}}
    assert member_client.patch(f"{LIST}{connector_id}/", body, format="json").status_code == 403
    assert outsider_client.patch(f"{LIST}{connector_id}/", body, format="json").status_code == 404
    row = SourceSettings.objects.get(connector_id=connector_id)
    assert row.verification_scheme == "none"
