"""Where did record X go? The trace of one record across two pipelines (SPEC §5.6)."""

from __future__ import annotations

import pytest

from pipelines import delivery
from pipelines.models import RunState
from pipelines.services import run_create, run_retry_failed
from tests.support.delivery import (
    ingest,
    make_destination,
    make_pipeline,
    make_records,
    make_source,
)
from tests.support.sink import Sink, fail_ids, status

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _loopback(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def trace(client, source, sequence: int) -> dict:
    answer = client.get(f"/api/v1/connectors/{source.pk}/records/{sequence}/")
    assert answer.status_code == 200, answer.content
    return {t["pipeline"]["name"]: t for t in answer.json()["trace"]}


def test_a_record_delivered_failed_retried_waiting_and_not_yet_sent(org_a, member_client):
    with Sink(fail_ids([7])) as crm, Sink(status(503)) as down:
        source = make_source(org_a, count=60)
        good = make_pipeline(
            org_a,
            source,
            make_destination(org_a, crm.url, split_failed_batches=True),
            name="To CRM",
        )
        make_pipeline(org_a, source, make_destination(org_a, down.url, name="Down"), name="To Down")
        first = run_create(pipeline=good, trigger="api")
        delivery.run_execute(run_id=first.id)
        first.refresh_from_db()
        assert first.state == RunState.PARTIALLY_FAILED

        seven, eight = trace(member_client, source, 7), trace(member_client, source, 8)
        assert seven["To CRM"]["fate"] == "failed"
        assert seven["To CRM"]["http_status"] == 422
        assert "422" in seven["To CRM"]["reason"]
        assert seven["To CRM"]["run"] == str(first.id)
        assert eight["To CRM"]["fate"] == "delivered"
        statuses = {a["status"] for a in eight["To CRM"]["attempts"]}
        assert 200 in statuses  # the request that carried it
        assert all(a["record_count"] >= 1 for a in eight["To CRM"]["attempts"])
        assert seven["To Down"]["fate"] == "not_yet_sent"

        # The other pipeline's destination is down: its run waits, and so does the record.
        stuck = run_create(pipeline=source.pipelines_as_source.get(name="To Down"), trigger="api")
        delivery.run_execute(run_id=stuck.id)
        stuck.refresh_from_db()
        assert stuck.state == RunState.WAITING
        waiting = trace(member_client, source, 8)["To Down"]
        assert waiting["fate"] == "waiting"
        assert "503" in waiting["reason"]
        assert waiting["waiting_until"] is not None

        # Fixed at the destination, retried: record 7 is delivered by the retry run.
        crm.behave = lambda request: status(200, body=b"{}")(request)
        retry = run_retry_failed(run=first)
        delivery.run_execute(run_id=retry.id)
        again = trace(member_client, source, 7)["To CRM"]
        assert again["fate"] == "delivered"
        assert again["run"] == str(retry.id)
        assert {a["run"] for a in again["attempts"]} == {str(first.id), str(retry.id)}

        # A record that arrived after the runs: not yet sent anywhere.
        ingest(source, make_records(1, start=61))
        late = trace(member_client, source, 61)
        assert {t["fate"] for t in late.values()} == {"not_yet_sent"}


def test_another_organizations_record_is_404(org_a, outsider_client, member_client):
    source = make_source(org_a, count=50)
    assert outsider_client.get(f"/api/v1/connectors/{source.pk}/records/1/").status_code == 404
    assert member_client.get(f"/api/v1/connectors/{source.pk}/records/999/").status_code == 404


def test_the_pages_find_a_record_and_show_its_fate(org_a, member_client, outsider_client):
    with Sink(fail_ids([9])) as crm:
        source = make_source(org_a, count=55)
        pipeline = make_pipeline(
            org_a, source, make_destination(org_a, crm.url, split_failed_batches=True)
        )
        run = run_create(pipeline=pipeline, trigger="api")
        delivery.run_execute(run_id=run.id)
    source_page = member_client.get(f"/connectors/{source.pk}/").content.decode()
    assert f'action="/connectors/{source.pk}/records/"' in source_page
    found = member_client.get(f"/connectors/{source.pk}/records/", {"match": "id:9"})
    page = found.content.decode()
    assert f'href="/connectors/{source.pk}/records/9/"' in page
    assert "Every record of this source was examined." in page
    bad = member_client.get(f"/connectors/{source.pk}/records/", {"match": "id"}).content.decode()
    assert "Use match=&lt;field&gt;:&lt;JSON value&gt;" in bad
    detail = member_client.get(f"/connectors/{source.pk}/records/9/").content.decode()
    assert 'data-fate="failed"' in detail
    assert "HTTP 422" in detail
    assert (
        'data-fate="delivered"'
        in member_client.get(f"/connectors/{source.pk}/records/10/").content.decode()
    )
    for url in (f"/connectors/{source.pk}/records/", f"/connectors/{source.pk}/records/9/"):
        assert outsider_client.get(url).status_code == 404


def test_support_staff_find_a_record_of_any_organization_in_the_admin(org_a, client, member_client):
    from django.contrib.auth import get_user_model

    with Sink(fail_ids([9])) as crm:
        source = make_source(org_a, count=55)
        pipeline = make_pipeline(
            org_a, source, make_destination(org_a, crm.url, split_failed_batches=True)
        )
        delivery.run_execute(run_id=run_create(pipeline=pipeline, trigger="api").id)
    staff = get_user_model().objects.create_user(
        username="support@osmos.example",
        email="support@osmos.example",
        is_staff=True,
        is_superuser=True,
    )
    client.force_login(staff)
    found = client.get("/admin/find-record/", {"connector": str(source.pk), "match": "id:9"})
    assert f"?connector={source.pk}&amp;sequence=9" in found.content.decode()
    assert "Org A" in found.content.decode()
    traced = client.get("/admin/find-record/", {"connector": str(source.pk), "sequence": "9"})
    assert 'data-fate="failed"' in traced.content.decode()
    # Not for tenants, whatever their role.
    assert member_client.get("/admin/find-record/").status_code == 302
