"""The customer's journeys in a real Chromium, against a live server, a loopback API and a
real worker: nothing of osmos is bypassed, and records really travel."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import requests
from django.core import mail
from playwright.sync_api import expect

from connectors.services import connector_create
from ingest.services import records_ingest, source_save
from osmos.tenancy.models import Membership, Organization, Role
from pipelines.models import Pipeline, Run
from pipelines.services import pipeline_create
from tests.support.factories import make_user
from tests.support.sink import Sink, ok, reject_containing
from tests.support.waiting import eventually

pytestmark = pytest.mark.browser


def orders(start: int, count: int) -> list[dict]:
    return [
        {"id": i, "email": f"buyer{i}@example.com", "amount": i * 2.5, "note": None}
        for i in range(start, start + count)
    ]


def _accepted_records(sink: Sink) -> list[dict]:
    """Every record the API accepted (answered 2xx), in order, repeats included."""
    return [record for request in sink.accepted() for record in request.records()]


def mailed_link(path_pattern: str) -> str:
    """The path of the link in the last mail sent (the live server shares this process)."""
    return re.search(rf"https?://[^/\s]+({path_pattern})", mail.outbox[-1].body).group(1)


def add_schema_field(page, name: str, type_: str, *, nullable: bool = False) -> None:
    """Fill the last row of the schema builder, adding a row first when it is taken."""
    names = page.locator("#schema-table input[name=field_name]")
    if names.last.input_value():
        page.get_by_role("button", name="+ Add field").click()
    row = page.locator("#schema-table tbody tr").last
    row.locator("input[name=field_name]").fill(name)
    row.locator("select[name=field_type]").select_option(type_)
    if nullable:
        row.get_by_label("nullable").check()


def test_sign_up_to_records_delivered_through_the_browser(page, sink, worker):
    # Sign up: the address first, then the mailed link; a new person and organization.
    page.goto("/signup/")
    page.get_by_label("Email").fill("ada@shop.example")
    page.get_by_role("button", name="Send me the link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    page.goto(mailed_link(r"/signup/\S+/"))
    page.get_by_label("Password").fill("correct-horse-battery-9")
    page.get_by_label("Organization name").fill("Ada's Shop")
    page.get_by_role("button", name="Create my account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ada's Shop")

    # A source with a schema, through the wizard.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Connectors").click()
    page.get_by_role("link", name="+ New connector").click()
    page.get_by_role("radio", name="Source").check()
    expect(page.locator("#step-destination")).to_be_hidden()
    page.get_by_label("Connector name").fill("Shop orders")
    add_schema_field(page, "id", "integer")
    add_schema_field(page, "email", "string")
    add_schema_field(page, "note", "string", nullable=True)
    add_schema_field(page, "amount", "number")
    # Reorder: amount goes above note, with the keyboard-reachable buttons.
    page.locator("#schema-table tbody tr").nth(3).get_by_role(
        "button", name="Move field up"
    ).click()
    page.get_by_role("button", name="Create connector").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Shop orders")

    # POST 50 records to the shown URL; the progress follows without a reload.
    ingest_url = page.locator("#ingest-url").input_value()
    assert re.fullmatch(r"http://localhost:\d+/ingest/[^/]+/", ingest_url)
    expect(page.locator("#curl-example")).to_contain_text(ingest_url)
    save = page.get_by_role("button", name="Save connector")
    expect(save).to_be_disabled()
    page.evaluate("window.__same_document = true")
    first = requests.post(ingest_url, json=orders(1, 30), timeout=10)
    assert first.status_code == 200, first.text
    expect(page.locator("#sample-gate")).to_contain_text("30 / 50")
    invalid = requests.post(ingest_url, json=[{"id": "x"}], timeout=10)
    assert invalid.status_code == 422
    assert requests.post(ingest_url, json=orders(31, 20), timeout=10).status_code == 200
    expect(page.locator("#sample-gate")).to_contain_text("50 / 50")
    assert page.evaluate("window.__same_document") is True  # no full reload happened
    expect(page.locator("#samples")).to_contain_text("buyer50@example.com")
    expect(save).to_be_enabled()
    save.click()
    expect(page.locator(".messages")).to_contain_text("saved and active")

    # A destination pointing at the loopback API.
    page.goto("/connectors/new/?direction=destination")
    page.get_by_label("Connector name").fill("CRM")
    add_schema_field(page, "id", "integer")
    add_schema_field(page, "email", "string")
    add_schema_field(page, "total", "number")
    page.get_by_label("URL", exact=True).fill(sink.url)
    page.get_by_role("button", name="+ Add header").click()
    page.get_by_label("Header name").fill("Authorization")
    page.get_by_label("Header value").fill("Bearer crm-secret-42ab")
    page.get_by_label("Batch size").fill("20")
    page.get_by_role("button", name="Create connector").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("CRM")
    expect(page.get_by_text("Authorization: ••••42ab", exact=True)).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("crm-secret")

    # The pipeline builder: total ← amount, a type warning seen and fixed on the way.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Pipelines").click()
    page.get_by_role("link", name="+ New pipeline").click()
    page.get_by_label("Source").select_option(label="Shop orders")
    page.get_by_label("Destination").select_option(label="CRM")
    page.get_by_role("button", name="Continue to mapping").click()
    total = page.get_by_label("total")
    total.select_option("email")
    expect(page.locator("#map-warning-3")).to_contain_text("Type mismatch")
    total.select_option("amount")
    expect(page.locator("#map-warning-3")).not_to_contain_text("Type mismatch")
    expect(page.locator("#mapped-preview")).to_contain_text("2.5")
    page.get_by_label("Every day at 07:00").check()
    expect(page.locator("#next-runs li")).to_have_count(3)
    page.get_by_label("Manual only").check()
    page.get_by_label("Pipeline name").fill("Orders to CRM")
    page.get_by_role("button", name="Create pipeline").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Orders to CRM")

    # Run now: the run page follows the run until it succeeds.
    page.get_by_role("button", name="▶ Run now").click()
    expect(page.locator("#run-state")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#records-delivered")).to_have_text("50")
    expect(page.get_by_text("Every record of this run was delivered")).to_be_visible()

    accepted = sink.accepted()
    received = _accepted_records(sink)
    assert sorted(r["id"] for r in received) == list(range(1, 51))
    assert received[0] == {"id": 1, "email": "buyer1@example.com", "total": 2.5}
    assert all(r.header("Authorization") == "Bearer crm-secret-42ab" for r in accepted)
    assert len(accepted) == 3  # batches of 20, 20, 10


def _failing_setup(sink_url: str):
    org = Organization.objects.create(name="Bolt Ltd", slug="bolt")
    user = make_user("ops@bolt.example")
    Membership.objects.create(user=user, organization=org, role=Role.MEMBER)
    schema = [
        {"name": "id", "type": "integer", "nullable": False},
        {"name": "email", "type": "string", "nullable": False},
    ]
    source = connector_create(
        organization=org, name="Signups", direction="source", fields=schema
    ).connector
    records = [
        {"id": i, "email": f"u{i}@{'spam' if i % 10 == 0 else 'mail'}.example"}
        for i in range(1, 61)
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
        organization=org,
        name="Mailer",
        direction="destination",
        fields=schema,
        destination={"url": sink_url, "write_mode": "single"},
    ).connector
    pipeline = pipeline_create(
        organization=org,
        name="Signups to mailer",
        source_id=source.pk,
        destination_id=destination.pk,
    )
    return user, pipeline


def test_failing_sink_run_shows_failed_records_csv_and_retry(page, sink, worker):
    user, pipeline = _failing_setup(sink.url)
    sink.behave = reject_containing("spam.example")
    page.goto("/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("pw-" + user.email)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"/pipelines/{pipeline.pk}/")

    # A member runs it; 6 of 60 records are refused by the API.
    page.get_by_role("button", name="▶ Run now").click()
    expect(page.locator("#run-state")).to_have_text("partially failed", timeout=30_000)
    expect(page.locator("#records-failed")).to_have_text("6")
    rows = page.locator("#failures tbody tr")
    expect(rows).to_have_count(6)
    expect(rows.first).to_contain_text("422")
    expect(rows.first).to_contain_text("u10@spam.example")

    # The CSV download holds the same failures.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    content = open(download_info.value.path(), encoding="utf-8").read()  # noqa: SIM115
    table = list(csv.DictReader(io.StringIO(content)))
    assert [int(row["sequence"]) for row in table] == [10, 20, 30, 40, 50, 60]
    assert all(row["http_status"] == "422" for row in table)
    assert "u10@spam.example" in table[0]["record"]

    # The API is fixed; "Retry failed" sends exactly those six again.
    sink.behave = ok
    delivered_before = len(_accepted_records(sink))
    page.get_by_role("button", name="Retry failed records").click()
    expect(page.locator("#run-state")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#records-delivered")).to_have_text("6")
    retried = _accepted_records(sink)[delivered_before:]
    assert sorted(r["id"] for r in retried) == [10, 20, 30, 40, 50, 60]
    run = eventually(lambda: Run.objects.filter(pipeline=pipeline, trigger="retry").first())
    assert run.records_failed == 0
    assert Pipeline.objects.filter(pk=pipeline.pk).exists()


def test_invited_person_signs_up_from_the_link_and_runs_but_cannot_manage(
    browser, live_server, page, sink, worker
):
    member_user, pipeline = _failing_setup(sink.url)
    owner = make_user("boss@bolt.example")
    Membership.objects.create(user=owner, organization=pipeline.organization, role=Role.OWNER)
    member_user.delete()
    sink.behave = ok

    # The owner invites a new person from the members page.
    page.goto("/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("pw-" + owner.email)
    page.get_by_role("button", name="Log in").click()
    page.goto("/members/")
    page.get_by_label("Email").fill("newbie@bolt.example")
    page.get_by_label("Role", exact=True).select_option("member")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent to newbie@bolt.example")).to_be_visible()
    link = mailed_link(r"/join/\S+/")

    # The invitee, in another browser, signs up from the link and lands in Bolt Ltd.
    context = browser.new_context(base_url=live_server.url)
    invitee = context.new_page()
    invitee.goto(link)
    invitee.get_by_label("Password").fill("correct-horse-battery-9")
    invitee.get_by_role("button", name="Create my account and join").click()
    expect(invitee.get_by_role("heading", level=1)).to_have_text("Bolt Ltd")
    assert Organization.objects.count() == 1

    # A member sees and runs the pipeline, and is offered nothing to manage.
    invitee.goto(f"/pipelines/{pipeline.pk}/")
    expect(invitee.get_by_role("link", name="Edit")).to_have_count(0)
    invitee.get_by_role("button", name="▶ Run now").click()
    expect(invitee.locator("#run-state")).to_have_text("succeeded", timeout=30_000)
    invitee.goto("/pipelines/")
    expect(invitee.get_by_role("link", name="+ New pipeline")).to_have_count(0)
    invitee.goto("/members/")
    expect(invitee.get_by_role("button", name="Send invitation")).to_have_count(0)
    context.close()
