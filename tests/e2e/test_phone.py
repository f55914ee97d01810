"""The editing pages on a 390 px phone, and the time-zone picker, in a real Chromium.

With OSMOS_SCREENSHOTS=1 (``make screenshots``) the pages are also saved to
docs/screenshots/phone-*.png.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from connectors.services import connector_create
from ingest.services import records_ingest, source_save

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
FIELDS = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "customer_email_address", "type": "string", "nullable": False},
    {"name": "amount", "type": "number", "nullable": True},
]


@pytest.fixture
def phone(browser, live_server, owner):
    context = browser.new_context(
        base_url=live_server.url, viewport=PHONE, timezone_id="Europe/Paris"
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/login/")
    page.fill("input[name=username]", owner.email)
    page.fill("input[name=password]", "pw-" + owner.email)
    page.locator("button[type=submit]").click()
    page.wait_for_url("**/")
    yield page
    context.close()


def shot(page, name: str) -> None:
    if os.environ.get("OSMOS_SCREENSHOTS") == "1":
        page.screenshot(path=str(OUT / f"phone-{name}.png"), full_page=True)


def fits_the_screen(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_the_schema_builder_is_usable_on_a_phone(phone):
    phone.goto("/connectors/new/")
    phone.get_by_role("button", name="+ Add field").click()
    name = phone.locator("#schema-table tbody tr").first.locator("input[name=field_name]")
    kind = phone.locator("#schema-table tbody tr").first.locator("select[name=field_type]")
    assert name.bounding_box()["width"] >= 0.55 * PHONE["width"]  # was 45 px before
    assert kind.bounding_box()["width"] >= 100
    fits_the_screen(phone)
    shot(phone, "new-connector")


def test_the_pipeline_builder_is_usable_on_a_phone_with_the_browsers_zone_first(
    phone, org_a, settings
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    source = connector_create(
        organization=org_a, name="Orders", direction="source", fields=FIELDS
    ).connector
    records = [
        {"id": i, "customer_email_address": f"u{i}@x.example", "amount": 1.5} for i in range(50)
    ]
    records_ingest(
        source=source.source,
        body=json.dumps(records).encode(),
        content_type="application/json",
        content_encoding=None,
        idempotency_key=None,
    )
    source_save(connector=source)
    destination = connector_create(
        organization=org_a,
        name="CRM",
        direction="destination",
        fields=FIELDS,
        destination={"url": "http://127.0.0.1:9/hook"},
    ).connector
    phone.goto(f"/pipelines/new/?source={source.pk}&destination={destination.pk}")
    select = phone.locator("select[data-mapping-select]").first
    assert select.bounding_box()["width"] >= 0.7 * PHONE["width"]
    zone = phone.locator("#id_timezone")
    expect(zone).to_have_value("Europe/Paris")  # a new pipeline starts in the browser's zone
    first = phone.locator("#timezone-list option").first
    assert first.get_attribute("value") == "Europe/Paris"
    expect(phone.locator("[data-use-zone]")).to_have_text("Europe/Paris")
    fits_the_screen(phone)
    shot(phone, "pipeline-builder")
