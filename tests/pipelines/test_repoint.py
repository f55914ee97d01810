"""Changing a schema (SPEC §3.4): duplicate with a new schema, then point pipelines at the copy.

Everything goes through the API as an integrator would: ``duplicate/`` with a ``schema``, the
copy's ingest URL, ``save/``, then ``PATCH /pipelines/{id}/`` with ``source``/``destination``.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from osmos.tenancy.models import Role
from pipelines.models import Pipeline, RecordFailure, Run, RunState
from pipelines.services import run_create
from tests.support.factories import (
    api_client,
    make_destination,
    make_member,
    make_pipeline,
    make_source,
)
from tests.support.schemas import CRM, ORDERS_STRICT, order_records

pytestmark = pytest.mark.django_db

MAPPING = {"id": "id", "email": "email", "total": "amount"}
# The copy's new schema: a nullable coupon added, amount kept.
ORDERS_V2 = [*ORDERS_STRICT, {"name": "coupon", "type": "string", "nullable": True}]


@pytest.fixture(autouse=True)
def _loopback(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def world(org_a):
    source = make_source(org_a, schema=ORDERS_STRICT, records=order_records(60), save=True)
    destination = make_destination(org_a, schema=CRM)
    pipeline = make_pipeline(org_a, source, destination, name="Orders to CRM", mapping=MAPPING)
    return source, destination, pipeline


def duplicate(api, connector_id, **body):
    return api.post(f"/api/v1/connectors/{connector_id}/duplicate/", body, format="json")


def active_copy(api, source, *, schema=ORDERS_V2, name="Orders v2"):
    """Duplicate ``source`` with ``schema``, send it 50 records through its ingest URL, save."""
    response = duplicate(api, source.pk, name=name, schema=schema)
    assert response.status_code == 201, response.json()
    copy = response.json()
    path = copy["source"]["ingest_url"].removeprefix("http://testserver")
    records = [{**r, "coupon": None} for r in order_records(50, start=1000)]
    if schema is not ORDERS_V2:
        names = {field["name"] for field in schema}
        records = [{k: v for k, v in r.items() if k in names} for r in records]
    sent = api_client().post(path, records, format="json")  # the sender: no credential
    assert sent.status_code == 200, sent.json()
    assert api.post(f"/api/v1/connectors/{copy['id']}/save/").status_code == 200
    return copy


def patch(api, pipeline, **body):
    return api.patch(f"/api/v1/pipelines/{pipeline.pk}/", body, format="json")


def test_a_duplicated_source_gets_the_new_schema_a_new_url_and_no_records(api_a, world):
    source, _destination, _pipeline = world
    response = duplicate(api_a, source.pk, name="Orders v2", schema=ORDERS_V2)
    assert response.status_code == 201
    copy = response.json()
    assert copy["schema"] == ORDERS_V2
    assert copy["source"]["state"] == "awaiting_samples"
    assert copy["source"]["sample_count"] == 0
    assert copy["source"]["ingest_url"].startswith("http://testserver/ingest/osm_")
    assert copy["warnings"] == []
    # The original keeps its schema, records and state.
    original = api_a.get(f"/api/v1/connectors/{source.pk}/").json()
    assert (original["schema"], original["source"]["sample_count"]) == (ORDERS_STRICT, 60)


def test_duplicate_schema_follows_the_rules_of_create_and_writes_nothing(api_a, world):
    source, _destination, _pipeline = world
    bad = [{"name": "id", "type": "integer", "nullable": False}, {"name": "id", "type": "text"}]
    response = duplicate(api_a, source.pk, name="Broken", schema=bad)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert all(set(item) == {"index", "field", "message"} for item in response.json()["schema"])
    assert {item["index"] for item in response.json()["schema"]} == {1}
    assert duplicate(api_a, source.pk, name="Null", schema=None).status_code == 400
    assert duplicate(api_a, source.pk, name="Empty", schema=[]).status_code == 400
    assert api_a.get("/api/v1/connectors/").json()["count"] == 2


def test_pointing_a_pipeline_at_the_copy_rechecks_the_mapping_and_resets_the_cursor(api_a, world):
    source, _destination, pipeline = world
    first = run_create(pipeline=pipeline, trigger="api")
    assert (first.sequence_from, first.sequence_to) == (0, 60)
    Run.objects.filter(pk=first.pk).update(state=RunState.SUCCEEDED, finished_at=timezone.now())
    copy = active_copy(api_a, source)

    response = patch(api_a, pipeline, source=copy["id"])
    assert response.status_code == 200, response.json()
    assert response.json()["source"] == copy["id"]
    assert response.json()["mapping"] == MAPPING
    pipeline.refresh_from_db()
    assert pipeline.cursor == 0
    assert pipeline.source_since is not None
    # The next run covers the copy's records from its first one.
    after = run_create(pipeline=pipeline, trigger="api")
    assert (after.sequence_from, after.sequence_to) == (0, 50)
    # The original is no longer in use: it can be deleted.
    assert api_a.delete(f"/api/v1/connectors/{source.pk}/").status_code == 204


def test_a_mapping_that_does_not_fit_the_new_schema_is_refused_with_field_items(api_a, world):
    source, _destination, pipeline = world
    no_amount = [f for f in ORDERS_STRICT if f["name"] != "amount"]
    copy = active_copy(api_a, source, schema=no_amount, name="Orders without amount")
    response = patch(api_a, pipeline, source=copy["id"])
    assert response.status_code == 400
    assert response.json()["mapping"] == [
        {"index": None, "field": "total", "message": "'amount' is not a field of the source."}
    ]
    assert "does not fit" in response.json()["detail"]
    pipeline.refresh_from_db()
    assert (pipeline.source_id, pipeline.cursor) == (source.pk, 0)
    # A mapping sent with the change is checked as sent: total is required at the destination.
    refused = patch(api_a, pipeline, source=copy["id"], mapping={"id": "id", "email": "email"})
    assert refused.status_code == 400
    assert refused.json()["mapping"][0]["field"] == "total"
    assert Pipeline.objects.get(pk=pipeline.pk).source_id == source.pk


def test_a_copy_that_is_not_active_yet_cannot_feed_the_pipeline(api_a, world):
    source, _destination, pipeline = world
    copy = duplicate(api_a, source.pk, name="Orders v2", schema=ORDERS_V2).json()
    response = patch(api_a, pipeline, source=copy["id"])
    assert response.status_code == 400
    assert "not active yet" in response.json()["source"][0]
    assert Pipeline.objects.get(pk=pipeline.pk).source_id == source.pk


def test_a_pipeline_moves_to_a_duplicated_destination_keeping_its_cursor(api_a, world):
    _source, destination, pipeline = world
    run_create(pipeline=pipeline, trigger="api")
    Run.objects.update(state=RunState.SUCCEEDED, finished_at=timezone.now())
    copy = duplicate(api_a, destination.pk, name="CRM v2").json()
    response = patch(api_a, pipeline, destination=copy["id"])
    assert response.status_code == 200, response.json()
    pipeline.refresh_from_db()
    assert (pipeline.destination_id.hex, pipeline.cursor) == (copy["id"].replace("-", ""), 60)


def test_repointing_waits_for_the_run_in_progress(api_a, world):
    _source, destination, pipeline = world
    run_create(pipeline=pipeline, trigger="api")  # queued: unfinished
    copy = duplicate(api_a, destination.pk, name="CRM v2").json()
    response = patch(api_a, pipeline, destination=copy["id"])
    assert response.status_code == 409
    assert "in progress" in response.json()["detail"]
    assert Pipeline.objects.get(pk=pipeline.pk).destination_id == destination.pk


def test_failed_records_of_runs_before_a_new_source_are_not_retried(api_a, world):
    source, _destination, pipeline = world
    old = run_create(pipeline=pipeline, trigger="api")
    Run.objects.filter(pk=old.pk).update(
        state=RunState.PARTIALLY_FAILED, finished_at=timezone.now(), records_failed=1
    )
    RecordFailure.objects.create(
        organization=pipeline.organization, run=old, sequence=3, reason="422", record={}
    )
    copy = active_copy(api_a, source)
    assert patch(api_a, pipeline, source=copy["id"]).status_code == 200
    response = api_a.post(f"/api/v1/runs/{old.pk}/retry-failed/")
    assert response.status_code == 409
    assert "previous source" in response.json()["detail"]


def test_a_pipeline_cannot_be_pointed_at_another_organizations_connector(
    api_a, api_b, world, org_b
):
    _source, _destination, pipeline = world
    foreign_source = make_source(org_b, schema=ORDERS_STRICT, records=order_records(50), save=True)
    foreign_destination = make_destination(org_b, schema=CRM)
    for key, foreign in (("source", foreign_source), ("destination", foreign_destination)):
        response = patch(api_a, pipeline, **{key: str(foreign.pk)})
        assert response.status_code == 400
        assert response.json()[key] == ["No such connector."]
    fresh = Pipeline.objects.get(pk=pipeline.pk)
    assert (fresh.source_id, fresh.destination_id) == (pipeline.source_id, pipeline.destination_id)
    # Another organization's pipeline is not there at all.
    assert patch(api_b, pipeline, source=str(foreign_source.pk)).status_code == 404


def test_members_cannot_repoint_pipelines(org_a, world):
    _source, destination, pipeline = world
    member = make_member(org_a, "member-repoint@example.com", Role.MEMBER)
    copy = make_destination(org_a, name="CRM v2", schema=CRM)
    response = patch(api_client(user=member), pipeline, destination=str(copy.pk))
    assert response.status_code == 403
    assert Pipeline.objects.get(pk=pipeline.pk).destination_id == destination.pk


def test_a_destination_copy_whose_schema_drops_a_url_placeholder_field_is_refused(org_a, settings):
    """A per-record URL names fields of the schema (SPEC §3.2): a copy without the field would
    have a URL it can never fill, so the duplicate is refused and nothing is written."""
    from connectors.models import Connector
    from connectors.services import connector_duplicate
    from osmos.errors import InvalidInput

    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    original = make_destination(
        org_a, url="http://127.0.0.1:9/users/{{email}}", write_mode="single", method="PUT"
    )
    without_email = [{"name": "id", "type": "integer", "nullable": False}]
    with pytest.raises(InvalidInput) as refused:
        connector_duplicate(connector=original, name="Copy", fields=without_email)
    assert [e.field for e in refused.value.errors] == ["destination.url"]
    assert "email" in refused.value.errors[0].message
    assert not Connector.objects.filter(organization=org_a, name="Copy").exists()
