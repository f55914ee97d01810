"""Changing a schema in a real Chromium (SPEC §3.4): duplicate a destination, edit the copy's
schema in the builder, create it, and move the pipeline to it from the copy's page; then a
run really delivers to the customer's API with the new schema's mapping."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from connectors.models import Connector
from osmos.tenancy.models import Membership, Organization, Role
from pipelines.models import Pipeline
from tests.support.factories import make_destination, make_pipeline, make_source, make_user
from tests.support.schemas import order_records
from tests.support.waiting import eventually

pytestmark = pytest.mark.browser

ORDERS = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
    {"name": "amount", "type": "number", "nullable": True},
]
CRM = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
]


def test_duplicate_with_a_new_schema_and_move_the_pipeline_in_the_browser(page, sink, worker):
    org = Organization.objects.create(name="Shop", slug="shop")
    user = make_user("owner@shop.example")
    Membership.objects.create(user=user, organization=org, role=Role.OWNER)
    source = make_source(org, schema=ORDERS, records=order_records(50, start=1), save=True)
    destination = make_destination(org, name="CRM", schema=CRM, url=sink.url)
    pipeline = make_pipeline(org, source, destination, name="Orders to CRM")

    page.goto("/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("pw-" + user.email)
    page.get_by_role("button", name="Log in").click()

    # The duplicate page is the wizard, prefilled with the original's schema.
    page.goto(f"/connectors/{destination.pk}/duplicate/")
    names = page.locator("#schema-table input[name=field_name]")
    expect(names).to_have_count(2)
    expect(names.nth(0)).to_have_value("id")
    expect(names.nth(1)).to_have_value("email")
    page.get_by_label("Name of the copy").fill("CRM v2")
    page.get_by_role("button", name="+ Add field").click()
    row = page.locator("#schema-table tbody tr").last
    row.locator("input[name=field_name]").fill("amount")
    row.locator("select[name=field_type]").select_option("number")
    row.get_by_label("nullable").check()
    page.get_by_role("button", name="Create the copy").click()

    # The copy's page: created, and it offers to move the original's pipeline.
    expect(page.locator(".messages")).to_contain_text("“CRM v2” created as a copy.")
    copy = Connector.objects.get(organization=org, name="CRM v2")
    assert copy.field_specs() == [
        ("id", "integer", False),
        ("email", "string", False),
        ("amount", "number", True),
    ]
    expect(page.locator("#duplicate-of")).to_contain_text("Orders to CRM")
    page.get_by_role("link", name="Move pipelines to this copy…").click()

    row = page.locator("#move-table tbody tr", has_text="Orders to CRM")
    expect(row).to_contain_text("Keeps its mapping")
    expect(row.get_by_label("Move Orders to CRM")).to_be_checked()
    page.get_by_role("button", name="Move the chosen pipelines").click()
    expect(row.locator(".move-result")).to_contain_text("moved")
    assert Pipeline.objects.get(pk=pipeline.pk).destination_id == copy.pk

    # Map the new field in the builder, then run: records reach the API with it.
    page.goto(f"/pipelines/{pipeline.pk}/edit/")
    page.locator("select[name=map_amount]").select_option("amount")
    page.get_by_role("button", name="Save pipeline").click()
    expect(page.locator(".messages")).to_contain_text("Pipeline saved.")
    page.get_by_role("button", name="▶ Run now").click()
    expect(page.locator("#run-state")).to_have_text("succeeded", timeout=30_000)
    delivered = eventually(lambda: len(sink.records()) == 50 and sink.records())
    assert delivered[0] == {"id": 1, "email": "user1@example.com", "amount": 1.5}


def test_duplicate_page_at_phone_width_keeps_the_schema_builder_usable(browser, live_server):
    org = Organization.objects.create(name="Shop", slug="shop")
    user = make_user("phone@shop.example")
    Membership.objects.create(user=user, organization=org, role=Role.OWNER)
    source = make_source(org, schema=ORDERS)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto("/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("pw-" + user.email)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"/connectors/{source.pk}/duplicate/")
    expect(page.locator("#schema-table input[name=field_name]")).to_have_count(3)
    page.get_by_label("Name of the copy").fill("Orders v2")
    page.get_by_role("button", name="Delete field").last.click()
    page.get_by_role("button", name="Create the copy").click()
    expect(page.locator(".messages")).to_contain_text("“Orders v2” created as a copy.")
    copy = Connector.objects.get(organization=org, name="Orders v2")
    assert [name for name, _t, _n in copy.field_specs()] == ["id", "email"]
    context.close()
