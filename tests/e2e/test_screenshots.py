"""``make screenshots``: the main pages of a seeded organization, saved to docs/screenshots/.

Not a test of behaviour: it runs only when OSMOS_SCREENSHOTS=1 (the make target sets it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from connectors.services import connector_create
from ingest.services import records_ingest, source_save
from osmos.tenancy.models import Membership, Organization, Role
from pipelines.models import Run
from pipelines.services import pipeline_create, run_create
from tests.support.factories import make_user
from tests.support.sink import reject_containing
from tests.support.waiting import eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        os.environ.get("OSMOS_SCREENSHOTS") != "1", reason="run by `make screenshots` only"
    ),
]

OUT = Path(django_settings.BASE_DIR) / "docs" / "screenshots"
SOURCE_SCHEMA = [
    {"name": "order_id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
    {"name": "amount", "type": "number", "nullable": False},
    {"name": "placed_at", "type": "datetime", "nullable": False},
    {"name": "coupon", "type": "string", "nullable": True},
]
DEST_SCHEMA = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
    {"name": "total", "type": "number", "nullable": False},
    {"name": "coupon", "type": "string", "nullable": True},
]


def _ingest(connector, records):
    records_ingest(
        source=connector.source,
        body=json.dumps(records).encode(),
        content_type="application/json",
        content_encoding=None,
        idempotency_key=None,
    )


def _orders(start: int, count: int) -> list[dict]:
    return [
        {
            "order_id": i,
            "email": f"buyer{i}@example.com" if i % 9 else f"buyer{i}@blocked.example",
            "amount": round(19.9 + i * 3.25, 2),
            "placed_at": f"2025-03-{1 + i % 28:02d}T09:{i % 60:02d}:00+01:00",
            "coupon": None if i % 4 else "SPRING",
        }
        for i in range(start, start + count)
    ]


def _seed(sink_url: str):
    org = Organization.objects.create(name="Acme Retail", slug="acme-retail")
    user = make_user("maria@acme.example")
    Membership.objects.create(user=user, organization=org, role=Role.OWNER)
    Membership.objects.create(user=make_user("li@acme.example"), organization=org, role="admin")
    Membership.objects.create(user=make_user("sam@acme.example"), organization=org, role="member")
    shop = connector_create(
        organization=org, name="Shop orders", direction="source", fields=SOURCE_SCHEMA
    ).connector
    _ingest(shop, _orders(1, 120))
    source_save(connector=shop)
    pending = connector_create(
        organization=org, name="Returns feed", direction="source", fields=SOURCE_SCHEMA
    ).connector
    _ingest(pending, _orders(500, 37))
    crm = connector_create(
        organization=org,
        name="CRM orders API",
        direction="destination",
        fields=DEST_SCHEMA,
        destination={
            "url": sink_url,
            "headers": [{"name": "Authorization", "value": "Bearer 9f8e7d6c5b4a3f2e"}],
            "batch_size": 10,
            "split_failed_batches": True,
        },
    ).connector
    pipeline = pipeline_create(
        organization=org,
        name="Orders to CRM",
        source_id=shop.pk,
        destination_id=crm.pk,
        mapping={"id": "order_id", "email": "email", "total": "amount", "coupon": "coupon"},
        schedule={"cron": "0 7 * * *", "timezone": "Europe/Paris"},
    )
    return user, shop, pending, crm, pipeline


def _finish(run: Run) -> Run:
    return eventually(lambda: Run.objects.filter(pk=run.pk, finished_at__isnull=False).first())


def _shoot(page, name: str, path: str, *, full: bool = True) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=full)


def test_screenshots_of_the_main_pages(page, sink, worker):
    OUT.mkdir(parents=True, exist_ok=True)
    _shoot(page, "01-signup", "/signup/", full=False)
    user, shop, pending, crm, pipeline = _seed(sink.url)
    sink.behave = reject_containing("blocked.example")
    first = _finish(run_create(pipeline=pipeline, trigger="manual"))
    _ingest(shop, _orders(121, 30))
    _finish(run_create(pipeline=pipeline, trigger="manual"))

    page.goto("/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill("pw-" + user.email)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
    _shoot(page, "02-home", "/")
    _shoot(page, "03-connectors", "/connectors/")
    page.goto("/connectors/new/")
    page.get_by_role("radio", name="Destination").check()
    page.get_by_label("Connector name").fill("Billing API")
    page.locator("#schema-table input[name=field_name]").first.fill("invoice_id")
    page.screenshot(path=str(OUT / "04-new-connector.png"), full_page=True)
    page.goto(f"/connectors/{pending.pk}/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate ingest URL").click()
    page.wait_for_selector("#ingest-url")
    page.screenshot(path=str(OUT / "05-source-awaiting-samples.png"), full_page=True)
    _shoot(page, "06-source-active", f"/connectors/{shop.pk}/")
    page.goto(f"/connectors/{crm.pk}/")
    page.get_by_role("button", name="Send test request").click()
    page.wait_for_selector("#test-result")
    page.screenshot(path=str(OUT / "07-destination.png"), full_page=True)
    _shoot(page, "08-pipeline-builder", f"/pipelines/new/?source={shop.pk}&destination={crm.pk}")
    _shoot(page, "09-pipeline", f"/pipelines/{pipeline.pk}/")
    _shoot(page, "10-run-with-failures", f"/pipelines/runs/{first.pk}/")
    _shoot(page, "11-members", "/members/")
    _shoot(page, "12-api-tokens", "/tokens/")
    assert len(list(OUT.glob("*.png"))) >= 12
