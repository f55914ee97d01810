"""The duplicate wizard and the "move pipelines to the copy" page (SPEC §3.4), without a browser:
prefill, schema errors in the builder, per-pipeline results, roles and tenancy."""

from __future__ import annotations

import pytest

from connectors.models import Connector
from connectors.services import connector_duplicate
from ingest.services import source_save
from pipelines.models import Pipeline
from tests.support.factories import make_pipeline
from tests.support.pages import ingest, make_destination, make_source, records

pytestmark = pytest.mark.django_db


def body(response) -> str:
    return response.content.decode()


def rows(*fields: tuple[str, str, bool]) -> dict:
    """The schema builder's rows as the page posts them."""
    return {
        "field_key": [f"f{i}" for i in range(len(fields))],
        "field_name": [name for name, _t, _n in fields],
        "field_type": [type_ for _n, type_, _nl in fields],
        "field_nullable": [f"f{i}" for i, (_n, _t, nullable) in enumerate(fields) if nullable],
    }


@pytest.fixture
def world(org_a):
    source = make_source(org_a, count=50, save=True)
    destination = make_destination(org_a)
    mapping = {"id": "id", "email": "email", "total": "amount"}
    fits = make_pipeline(org_a, source, destination, name="Nightly", mapping=mapping)
    return source, destination, fits


def test_the_duplicate_page_prefills_the_original_schema_in_the_builder(owner_page, world):
    source, _destination, _pipeline = world
    html = body(owner_page.get(f"/connectors/{source.pk}/duplicate/"))
    for position, name in enumerate(("id", "email", "amount")):
        assert f'id="field-name-f{position}" value="{name}"' in html
    assert 'value="Orders (copy)"' in html
    assert "1 pipeline uses Orders (Nightly)" in html


def test_schema_errors_show_in_the_builder_rows_and_nothing_is_created(owner_page, world):
    source, _destination, _pipeline = world
    response = owner_page.post(
        f"/connectors/{source.pk}/duplicate/",
        {"name": "Orders v2", "direction": "source", **rows(("id", "integer", False),
                                                             ("id", "string", False))},
    )  # fmt: skip
    assert response.status_code == 400
    assert 'id="field-errors-f1"' in body(response)
    assert not Connector.objects.filter(name="Orders v2").exists()


def test_the_move_page_moves_what_fits_and_says_why_the_rest_cannot(owner_page, org_a, world):
    source, _destination, fits = world
    other_destination = make_destination(org_a, name="Archive")
    breaks = make_pipeline(
        org_a, source, other_destination, name="Archive feed",
        mapping={"id": "id", "email": "email", "total": "amount"},
    )  # fmt: skip
    copy = connector_duplicate(
        connector=source,
        name="Orders v2",
        fields=[{"name": "id", "type": "integer", "nullable": False},
                {"name": "email", "type": "string", "nullable": False}],
    ).connector  # fmt: skip
    ingest(copy, [{"id": r["id"], "email": r["email"]} for r in records(50)])
    source_save(connector=copy)

    page = body(owner_page.get(f"/connectors/{copy.pk}/"))
    assert "Copy of" in page
    assert "Move pipelines to this copy" in page
    listing = body(owner_page.get(f"/pipelines/move-to/{copy.pk}/"))
    assert "Cannot move here" in listing
    assert "total: &#x27;amount&#x27; is not a field of the source." in listing

    response = owner_page.post(
        f"/pipelines/move-to/{copy.pk}/", {"pipeline": [str(fits.pk), str(breaks.pk)]}
    )
    assert response.status_code == 200
    # Neither mapping fits (amount is gone and total is required): nothing moved.
    assert Pipeline.objects.get(pk=fits.pk).source_id == source.pk
    assert Pipeline.objects.get(pk=breaks.pk).source_id == source.pk


def test_a_pipeline_whose_mapping_does_not_fit_takes_same_names_when_those_fit(owner_page, org_a):
    source = make_source(org_a, count=50, save=True)
    destination = make_destination(org_a)
    pipeline = make_pipeline(
        org_a, source, destination, mapping={"id": "id", "email": "email", "total": "amount"}
    )
    copy = connector_duplicate(
        connector=source,
        name="Orders v2",
        fields=[{"name": "id", "type": "integer", "nullable": False},
                {"name": "email", "type": "string", "nullable": False},
                {"name": "total", "type": "number", "nullable": False}],
    ).connector  # fmt: skip
    ingest(copy, [{"id": r["id"], "email": r["email"], "total": 1.0} for r in records(50)])
    source_save(connector=copy)
    listing = body(owner_page.get(f"/pipelines/move-to/{copy.pk}/"))
    assert "it takes the same-name mapping" in listing
    response = owner_page.post(f"/pipelines/move-to/{copy.pk}/", {"pipeline": [str(pipeline.pk)]})
    assert "moved" in body(response)
    assert "starts from the first record of the copy" in body(response)
    pipeline.refresh_from_db()
    assert (pipeline.source_id, pipeline.cursor) == (copy.pk, 0)
    assert pipeline.mapping == {"id": "id", "email": "email", "total": "total"}


def test_moving_to_a_copy_that_needs_its_samples_is_explained(owner_page, world):
    source, _destination, fits = world
    copy = connector_duplicate(connector=source, name="Orders v2").connector
    listing = body(owner_page.get(f"/pipelines/move-to/{copy.pk}/"))
    assert "needs its samples" in listing
    owner_page.post(f"/pipelines/move-to/{copy.pk}/", {"pipeline": [str(fits.pk)]})
    assert Pipeline.objects.get(pk=fits.pk).source_id == source.pk


def test_roles_and_tenancy_of_the_move_page(owner_page, member_page, outsider_page, world):
    _source, destination, fits = world
    copy = connector_duplicate(connector=destination, name="CRM v2").connector
    url = f"/pipelines/move-to/{copy.pk}/"
    assert member_page.get(url).status_code == 403
    assert member_page.post(url, {"pipeline": [str(fits.pk)]}).status_code == 403
    assert outsider_page.get(url).status_code == 404
    assert outsider_page.post(url, {"pipeline": [str(fits.pk)]}).status_code == 404
    assert Pipeline.objects.get(pk=fits.pk).destination_id == destination.pk
    # A connector that is no copy has no such page.
    assert owner_page.get(f"/pipelines/move-to/{destination.pk}/").status_code == 404
    # The owner moves it.
    owner_page.post(url, {"pipeline": [str(fits.pk)]})
    assert Pipeline.objects.get(pk=fits.pk).destination_id == copy.pk
