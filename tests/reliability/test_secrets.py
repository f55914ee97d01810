"""Secrets never leak: header values, API tokens and ingest tokens.

Each test walks many paths (API, pages, admin, ingest errors, a delivery with failures)
while capturing every log record of every logger at DEBUG, then greps every response body
and every log line for the secrets. Only the one response that issues a secret may show it.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from osmos.tenancy.models import ApiToken, Membership, Role
from pipelines import delivery
from pipelines.models import RecordFailure, RequestLog
from pipelines.services import run_create
from tests.reliability.test_tenant_isolation_sweep import (
    ADMIN_SESSION_ROUTES,
    PUBLIC_ROUTES,
    _routes,
    _values_for,
)
from tests.support.factories import HEADER_SECRET, build_world, make_user
from tests.support.schemas import IDS as SCHEMA
from tests.support.schemas import id_records as schema_records
from tests.support.sink import Answer, Sink


class Evidence:
    """Everything the product said: response bodies and headers, and log lines."""

    def __init__(self, caplog):
        self.caplog = caplog
        self.bodies: list[tuple[str, str]] = []

    def keep(self, label: str, response) -> None:
        content = b"".join(response.streaming_content) if response.streaming else response.content
        headers = "\n".join(f"{k}: {v}" for k, v in response.items())
        self.bodies.append((label, headers + "\n" + content.decode(errors="replace")))

    def log_lines(self) -> list[str]:
        lines = []
        for record in self.caplog.records:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            lines.append(f"{record.name}: {text}")
        return lines

    def leaks(self, secrets: dict[str, str]) -> list[str]:
        found = []
        for what, secret in secrets.items():
            found += [f"{what} in response to {label}" for label, b in self.bodies if secret in b]
            found += [f"{what} in log: {line[:200]}" for line in self.log_lines() if secret in line]
        return found


@pytest.fixture
def evidence(caplog):
    caplog.set_level(logging.DEBUG)  # the root logger, so every library's debug lines too
    return Evidence(caplog)


@pytest.fixture
def staff_client(db):
    user = get_user_model().objects.create_superuser(
        username="support@osmos.example", email="support@osmos.example", password="pw-support"
    )
    client = APIClient()
    client.force_login(user)
    return client


def _get_every_route(client, world, evidence, *, prefix: str = "") -> None:
    for route in _routes():
        skip = route.text in PUBLIC_ROUTES or route.text in ADMIN_SESSION_ROUTES
        if skip or not route.text.startswith(prefix) or route.text.startswith("admin/"):
            continue
        for values in _values_for(route, world) if route.params else [{}]:
            url = route.url(values)
            evidence.keep(f"GET {url}", client.get(url))
            if "failures" in url:
                evidence.keep(f"GET {url}?format=csv", client.get(url + "?format=csv"))


def _get_every_admin_page(client, world, evidence) -> None:
    objects = {
        "connectors/connector": [world.source.pk, world.destination.pk],
        "tenancy/apitoken": [world.api_token.pk],
        "pipelines/pipeline": [world.pipeline.pk],
        "pipelines/run": [world.run.pk],
        "pipelines/recordfailure": [world.failure.pk],
    }
    for route in _routes():
        text = route.text
        if not text.startswith("admin/") or text in ADMIN_SESSION_ROUTES or "<url>" in text:
            continue
        if text == "admin/autocomplete/":  # needs the parameters of a widget: 403 without
            continue
        if "<object_id>" in text:
            model = text.removeprefix("admin/").split("/<object_id>")[0]
            ids = objects.get(model, [])
            urls = [text.replace("<object_id>", str(i)) for i in ids]
        elif route.params:
            continue
        else:
            urls = [text]
        for url in urls:
            if url.endswith("/delete/"):
                continue  # the confirmation page lists related objects: fetched below anyway
            response = client.get("/" + url)
            assert response.status_code in (200, 302, 403), (url, response.status_code)
            evidence.keep(f"GET /{url}", response)


@pytest.mark.reliability
def test_header_values_never_appear_outside_the_request_to_the_customer(
    transactional_db, org_a, owner, owner_client, staff_client, evidence, settings
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DELIVERY_RETRY_SCHEDULE = (0.01,)
    settings.DELIVERY_QUICK_RETRY_SECONDS = 0
    member_user = make_user("m@a.example")
    Membership.objects.create(user=member_user, organization=org_a, role=Role.MEMBER)
    with Sink() as sink:
        # The sink refuses records whose id ends in 2, and echoes nothing of the request.
        sink.behave = lambda r: (
            Answer(400, b'{"error": "bad record"}') if b"2," in r.body else Answer()
        )
        world = build_world(org_a, member_user=member_user, sink_url=sink.url)
        destination_settings = world.destination.destination
        destination_settings.write_mode = "single"
        destination_settings.save()

        # The API: create another destination with a secret header, read, edit, duplicate.
        created = owner_client.post(
            "/api/v1/connectors/",
            {
                "name": "Second",
                "direction": "destination",
                "schema": SCHEMA,
                "destination": {
                    "url": sink.url,
                    "headers": [{"name": "X-Api-Key", "value": HEADER_SECRET + "-2"}],
                },
            },
            format="json",
        )
        assert created.status_code == 201, created.content
        evidence.keep("POST /api/v1/connectors/", created)
        second = created.json()["id"]
        evidence.keep(
            "PATCH name",
            owner_client.patch(f"/api/v1/connectors/{second}/", {"name": "Second!"}, format="json"),
        )
        evidence.keep(
            "PATCH bad header",
            owner_client.patch(
                f"/api/v1/connectors/{second}/",
                {"destination": {"headers": [{"name": "X-Api-Key", "value": ""}]}},
                format="json",
            ),
        )
        evidence.keep(
            "duplicate",
            owner_client.post(
                f"/api/v1/connectors/{second}/duplicate/", {"name": "Third"}, format="json"
            ),
        )
        evidence.keep("test", owner_client.post(f"/api/v1/connectors/{world.destination.pk}/test/"))

        # A delivery with failures, executed by the engine itself (what the actor calls).
        run = run_create(pipeline=world.pipeline, trigger="api")
        delivery.run_execute(run_id=run.pk)
        run.refresh_from_db()
        assert run.records_failed >= 1, run
        assert run.records_delivered >= 1, run
        # The customer's API must receive the header (else this test proves nothing).
        assert sink.requests
        assert {r.header("Authorization") for r in sink.requests} == {HEADER_SECRET}

        _get_every_route(owner_client, world, evidence)
        _get_every_admin_page(staff_client, world, evidence)

    stored = [f.reason + f.response_excerpt for f in RecordFailure.objects.all()]
    stored += [r.error for r in RequestLog.objects.all()]
    assert not [s for s in stored if HEADER_SECRET in s]
    assert not evidence.leaks({"header value": HEADER_SECRET})
    # Masked: the last 4 characters only.
    assert (HEADER_SECRET + "-2")[-4:] in json.dumps(created.json())


@pytest.mark.reliability
def test_api_and_ingest_tokens_are_shown_once_and_never_logged(
    world_a, owner_client, staff_client, evidence
):
    world = world_a
    # An API token issued in the page: shown in that response only.
    issued = owner_client.post("/tokens/", {"name": "CI"})
    assert issued.status_code == 200
    (api_secret,) = re.findall(r"osm_[\w-]{40,}", issued.content.decode())
    assert ApiToken.objects.filter(name="CI").exists()
    # A source created in the API: its ingest URL is in that response only.
    created = owner_client.post(
        "/api/v1/connectors/",
        {"name": "Webhook", "direction": "source", "schema": SCHEMA},
        format="json",
    )
    assert created.status_code == 201
    ingest_token = created.json()["source"]["ingest_url"].rstrip("/").rsplit("/", 1)[-1]
    rotated = owner_client.post(f"/api/v1/connectors/{world.source.pk}/rotate-token/")
    assert rotated.status_code == 200, rotated.content
    new_world_token = rotated.json()["source"]["ingest_url"].rstrip("/").rsplit("/", 1)[-1]

    # Use them, well and badly.
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_secret}")
    evidence.keep("GET with token", api.get("/api/v1/connectors/"))
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_secret}x")
    evidence.keep("GET with a wrong token", api.get("/api/v1/connectors/"))
    anonymous = APIClient()
    for token in (ingest_token, new_world_token, world.ingest_token):  # the last one: rotated
        url = f"/ingest/{token}/"
        body = json.dumps(schema_records(3)).encode()
        evidence.keep("ingest ok", anonymous.post(url, body, content_type="application/json"))
        evidence.keep(
            "ingest 422", anonymous.post(url, b'[{"id": "x"}]', content_type="application/json")
        )
        evidence.keep("ingest 400", anonymous.post(url, b"[{", content_type="application/json"))
        evidence.keep("ingest 415", anonymous.post(url, b"{}", content_type="text/plain"))
        evidence.keep("ingest 405", anonymous.get(url))
        evidence.keep(
            "ingest bad gzip",
            anonymous.post(
                url,
                gzip.compress(body)[:20],
                content_type="application/json",
                HTTP_CONTENT_ENCODING="gzip",
            ),
        )
    _get_every_route(owner_client, world, evidence)
    _get_every_admin_page(staff_client, world, evidence)

    leaks = evidence.leaks(
        {
            "API token": api_secret,
            "ingest token": ingest_token,
            "rotated-in ingest token": new_world_token,
            "rotated-out ingest token": world.ingest_token,
            "API token of the world": world.api_token_secret,
        }
    )
    assert not leaks, "\n".join(leaks)


@pytest.mark.reliability
def test_signing_and_verification_secrets_are_shown_once_and_never_logged(
    world_a, owner_client, staff_client, evidence
):
    world = world_a
    api = "/api/v1/connectors/"
    # Issued in these responses only (not kept as evidence: they are meant to show them).
    signed = owner_client.post(
        api,
        {
            "name": "Signed",
            "direction": "destination",
            "schema": SCHEMA,
            "destination": {"url": "http://127.0.0.1:9/", "signing": {"enabled": True}},
        },
        format="json",
    ).json()
    first_signing = signed["destination"]["signing"]["secret"]
    rotated = owner_client.post(f"{api}{signed['id']}/rotate-signing-secret/")
    second_signing = rotated.json()["destination"]["signing"]["secret"]
    verified = owner_client.post(
        api,
        {
            "name": "Verified",
            "direction": "source",
            "schema": SCHEMA,
            "source": {"verification": {"scheme": "standard_webhooks"}},
        },
        format="json",
    ).json()
    verification_secret = verified["source"]["verification"]["secret"]
    path = "/ingest/" + verified["source"]["ingest_url"].rstrip("/").rsplit("/", 1)[-1] + "/"
    page_enabled = owner_client.post(
        f"/connectors/{world.destination.pk}/signing/", {"action": "enable"}, follow=True
    )
    (page_secret,) = re.findall(r"whsec_[A-Za-z0-9+/=]{40,}", page_enabled.content.decode())
    # The user's own HMAC secret is never echoed, not even in the response that sets it.
    own = "own-shared-secret-0123456789"
    evidence.keep(
        "PATCH own hmac secret",
        owner_client.patch(
            f"{api}{world.source.pk}/",
            {"source": {"verification": {"scheme": "hmac_sha256", "secret": own}}},
            format="json",
        ),
    )

    # Use them, well and badly: signed and unsigned ingest, a wrong key, a stale timestamp.
    anonymous = APIClient()
    body = json.dumps(schema_records(3))
    for label, secret, at in (
        ("signed", verification_secret, datetime.now(tz=UTC)),
        ("stale", verification_secret, datetime.now(tz=UTC) - timedelta(minutes=10)),
        ("other key", first_signing, datetime.now(tz=UTC)),
    ):
        headers = {
            "HTTP_WEBHOOK_ID": "msg_1",
            "HTTP_WEBHOOK_TIMESTAMP": str(int(at.timestamp())),
            "HTTP_WEBHOOK_SIGNATURE": Webhook(secret).sign("msg_1", at, body),
        }
        response = anonymous.post(path, body.encode(), content_type="application/json", **headers)
        assert response.status_code == (200 if label == "signed" else 401), label
        evidence.keep(f"ingest {label}", response)
    evidence.keep("ingest unsigned", anonymous.post(path, body, content_type="application/json"))
    world_path = f"/ingest/{world.ingest_token}/"
    evidence.keep(
        "hmac unsigned", anonymous.post(world_path, body, content_type="application/json")
    )
    evidence.keep(
        "rotate without signing",
        owner_client.post(f"{api}{world.source.pk}/rotate-signing-secret/"),
    )
    _get_every_route(owner_client, world, evidence)
    _get_every_admin_page(staff_client, world, evidence)

    leaks = evidence.leaks(
        {
            "signing secret (first)": first_signing,
            "signing secret (rotated)": second_signing,
            "signing secret (page)": page_secret,
            "verification secret": verification_secret,
            "own HMAC secret": own,
        }
    )
    assert not leaks, "\n".join(leaks)


def test_log_redaction_recognises_every_token_the_product_issues():
    from osmos.redaction import REDACTED, redact
    from osmos.tenancy.models import TOKEN_PREFIX, new_secret_token

    token, _lookup, _hash = new_secret_token()
    assert redact(f"Not Found: /ingest/{token}/") == f"Not Found: /ingest/{REDACTED}/"
    assert REDACTED.startswith(TOKEN_PREFIX)
