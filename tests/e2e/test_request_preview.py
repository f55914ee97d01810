"""The destination form's live preview in a real browser (SPEC §3.2): editing the URL and the
body template rebuilds the first request (osmos/static/osmos/preview.js), with secret header
values masked."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from connectors.services import connector_create
from osmos.tenancy.models import Membership, Organization, Role
from tests.support.factories import make_user

pytestmark = pytest.mark.browser
SCHEMA = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
]


def log_in(page, user) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("pw-" + user.email)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture
def destination_of_admin(transactional_db, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    org = Organization.objects.create(name="Preview Ltd", slug="preview")
    user = make_user("admin@preview.example")
    Membership.objects.create(user=user, organization=org, role=Role.ADMIN)
    destination = connector_create(
        organization=org,
        name="CRM",
        direction="destination",
        fields=SCHEMA,
        destination={
            "url": "http://127.0.0.1:9/events",
            "headers": [{"name": "Authorization", "value": "Bearer preview-secret"}],
            "write_mode": "batch",
            "batch_size": 20,
        },
    ).connector
    return destination, user


def test_the_preview_follows_the_template_and_url_as_they_are_typed(page, destination_of_admin):
    destination, user = destination_of_admin
    log_in(page, user)
    page.goto(f"/connectors/{destination.pk}/edit/")
    preview = page.locator("#request-preview")
    expect(preview).to_contain_text("POST http://127.0.0.1:9/events")
    expect(preview).to_contain_text("Authorization: ••••")

    page.locator("[name=body_template]").fill('{"events": "{{records}}", "source": "osmos"}')
    expect(preview).to_contain_text('"source":"osmos"')
    expect(preview).to_contain_text('{"events":[{')

    page.locator("[name=url]").fill("http://127.0.0.1:9/v2/events")
    expect(preview).to_contain_text("POST http://127.0.0.1:9/v2/events")

    page.locator("[name=body_template]").fill('{"a": "{{records}}", "b": "{{records}}"}')
    expect(preview).to_contain_text("exactly once")
    assert "preview-secret" not in preview.inner_html()
