"""Signed requests both ways, in a real browser: a source requires Standard Webhooks signatures
(secret shown once, then a request signed by the library is stored and an unsigned one is
refused), a destination enables and rotates its signing secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import requests
from playwright.sync_api import expect
from standardwebhooks.webhooks import Webhook

from connectors.services import connector_create
from osmos.tenancy.models import Membership, Organization, Role
from tests.support.factories import make_user

pytestmark = pytest.mark.browser
SCHEMA = [{"name": "id", "type": "integer", "nullable": False}]


def log_in(page, user) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("pw-" + user.email)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture
def admin_of_org(transactional_db):
    org = Organization.objects.create(name="Sig Ltd", slug="sig")
    user = make_user("admin@sig.example")
    Membership.objects.create(user=user, organization=org, role=Role.ADMIN)
    return org, user


def test_a_source_requires_signatures_set_in_the_page(page, live_server, admin_of_org):
    org, user = admin_of_org
    issued = connector_create(organization=org, name="Hooks", direction="source", fields=SCHEMA)
    log_in(page, user)
    page.goto(f"/connectors/{issued.connector.pk}/")
    page.get_by_label("Scheme").select_option("standard_webhooks")
    page.get_by_role("button", name="Save sender verification").click()
    secret = page.locator("#verification-secret").input_value()
    assert secret.startswith("whsec_")
    page.reload()
    expect(page.locator("#verification-secret")).to_have_count(0)  # shown once

    url = f"{live_server.url}/ingest/{issued.ingest_token}/"
    body = json.dumps([{"id": 1}])
    now = datetime.now(tz=UTC)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_1", now, body),
    }
    assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 200
    unsigned = requests.post(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert unsigned.status_code == 401


def test_a_destination_enables_and_rotates_signing_in_the_page(page, admin_of_org, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    org, user = admin_of_org
    destination = connector_create(
        organization=org,
        name="CRM",
        direction="destination",
        fields=SCHEMA,
        destination={"url": "http://127.0.0.1:9/hook"},
    ).connector
    log_in(page, user)
    page.goto(f"/connectors/{destination.pk}/")
    page.get_by_role("button", name="Enable signing").click()
    first = page.locator("#signing-secret").input_value()
    assert first.startswith("whsec_")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate signing secret").click()
    second = page.locator("#signing-secret").input_value()
    assert second.startswith("whsec_")
    assert second != first
    expect(page.locator("#signing")).to_contain_text("the previous secret signs too")
