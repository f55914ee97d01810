"""Connector pages: list, wizard, source and destination pages, edit, duplicate, delete."""

from __future__ import annotations

import json
from html import unescape

import pytest
from django.test import Client

from connectors.models import Connector
from connectors.selectors import source_for_ingest_token
from ingest.models import Record
from pipelines.services import pipeline_create
from tests.support.pages import ingest, make_destination, make_source, records

pytestmark = pytest.mark.django_db


def body(response) -> str:
    return response.content.decode()


def wizard_post(**overrides) -> dict:
    data = {
        "system": "http_api",
        "direction": "source",
        "name": "Shop orders",
        "field_key": ["a", "b"],
        "field_name": ["id", "note"],
        "field_type": ["integer", "string"],
        "field_nullable": ["b"],
    }
    data.update(overrides)
    return data


def destination_post(**overrides) -> dict:
    data = wizard_post(direction="destination", name="CRM")
    data.update(
        {
            "url": "http://127.0.0.1:9/hook",
            "method": "PUT",
            "header_name": ["Authorization"],
            "header_value": ["Bearer secret-token-1234"],
            "write_mode": "batch",
            "batch_size": "500",
            "split_failed_batches": "on",
            "timeout_seconds": "12",
        }
    )
    data.update(overrides)
    return data


def ingest_token_of(response) -> str:
    url = body(response).split('id="ingest-url" value="')[1].split('"')[0]
    return url.rstrip("/").rsplit("/", 1)[1]


# --- list ---------------------------------------------------------------------------------------


def test_list_shows_the_organizations_connectors_with_sample_progress(owner_page, org_a, org_b):
    make_source(org_a, name="Orders", count=37)
    make_destination(org_a, name="CRM")
    make_source(org_b, name="Their secret source")
    html = body(owner_page.get("/connectors/"))
    assert "Orders" in html
    assert "CRM" in html
    assert "37 / 50" in html
    assert "Their secret source" not in html


def test_list_filters_by_direction_and_searches_by_name(owner_page, org_a):
    make_source(org_a, name="Shop orders")
    make_source(org_a, name="Returns")
    make_destination(org_a, name="Shop CRM")
    html = body(owner_page.get("/connectors/", {"direction": "source", "q": "shop"}))
    assert "Shop orders" in html
    assert "Returns" not in html
    assert "Shop CRM" not in html
    nothing = body(owner_page.get("/connectors/", {"q": "zzz"}))
    assert "No connector matches" in nothing


def test_list_with_an_unknown_direction_is_not_an_error(owner_page, org_a):
    make_source(org_a, name="Shop orders")
    response = owner_page.get("/connectors/", {"direction": "sideways"})
    assert response.status_code == 200
    assert "Shop orders" in body(response)


def test_list_names_the_pipelines_using_each_connector(owner_page, org_a):
    source = make_source(org_a, name="Orders", count=50, save=True)
    destination = make_destination(org_a, name="CRM")
    pipeline_create(
        organization=org_a,
        name="Orders to CRM",
        source_id=source.pk,
        destination_id=destination.pk,
        mapping={"id": "id", "email": "email", "total": "amount"},
    )
    assert body(owner_page.get("/connectors/")).count("Orders to CRM") == 2


def test_long_lists_are_paginated(owner_page, org_a):
    for n in range(30):
        make_source(org_a, name=f"source {n:02d}")
    first = body(owner_page.get("/connectors/"))
    second = body(owner_page.get("/connectors/", {"page": 2}))
    assert "source 00" in first
    assert "source 29" not in first
    assert "source 29" in second
    assert "Page 2 of 2" in second


def test_empty_list_tells_a_manager_what_to_do_next(owner_page, member_page):
    assert "Start with a" in body(owner_page.get("/connectors/"))
    assert "An owner or admin" in body(member_page.get("/connectors/"))


def test_anonymous_visitor_is_sent_to_login():
    response = Client().get("/connectors/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


# --- the wizard ---------------------------------------------------------------------------------


def test_wizard_creates_a_source_and_shows_its_ingest_url_once(owner_page, org_a):
    response = owner_page.post("/connectors/new/", wizard_post(), follow=True)
    connector = Connector.objects.get(organization=org_a, name="Shop orders")
    assert connector.field_specs() == [("id", "integer", False), ("note", "string", True)]
    token = ingest_token_of(response)
    assert source_for_ingest_token(token=token).connector == connector
    assert "curl -X POST" in body(response)
    again = body(owner_page.get(f"/connectors/{connector.pk}/"))
    assert token not in again
    assert "shown only when it is issued" in again


def test_wizard_creates_a_destination_whose_header_values_are_masked(owner_page, org_a):
    response = owner_page.post("/connectors/new/", destination_post(), follow=True)
    connector = Connector.objects.get(organization=org_a, name="CRM")
    settings = connector.destination
    assert (settings.url, settings.method, settings.batch_size) == (
        "http://127.0.0.1:9/hook",
        "PUT",
        500,
    )
    assert settings.split_failed_batches is True
    assert settings.timeout_seconds == 12
    assert settings.decrypted_headers() == [("Authorization", "Bearer secret-token-1234")]
    html = body(response)
    assert "Bearer secret-token-1234" not in html
    assert "••••1234" in html


def test_wizard_shows_errors_next_to_fields_and_creates_nothing(owner_page, org_a):
    make_source(org_a, name="Taken")
    response = owner_page.post(
        "/connectors/new/",
        destination_post(
            name="Taken",
            field_key=["a", "b"],
            field_name=["id", "id"],
            url="ftp://example.com/",
            batch_size="0",
        ),
    )
    assert response.status_code == 400
    html = body(response)
    assert "already exists" in html
    assert 'id="name-errors"' in html
    assert 'id="url-errors"' in html
    assert 'id="batch-size-errors"' in html
    assert 'id="field-errors-b"' in html
    assert Connector.objects.filter(organization=org_a).count() == 1


def test_wizard_refuses_a_source_without_a_schema(owner_page, org_a):
    response = owner_page.post(
        "/connectors/new/", wizard_post(field_key=[], field_name=[], field_type=[])
    )
    assert response.status_code == 400
    assert not Connector.objects.filter(organization=org_a).exists()


def test_wizard_without_a_direction_says_so(owner_page, org_a):
    response = owner_page.post("/connectors/new/", wizard_post(direction=""))
    assert response.status_code == 400
    assert "Must be one of" in body(response)
    assert not Connector.objects.filter(organization=org_a).exists()


def test_wizard_without_javascript_adds_a_blank_field_row_and_saves_nothing(owner_page, org_a):
    response = owner_page.post("/connectors/new/", wizard_post(add_field="1"))
    assert response.status_code == 200
    assert body(response).count('name="field_name"') == 3 + 1  # 3 rows + the row template
    assert not Connector.objects.filter(organization=org_a).exists()


def test_member_can_neither_open_nor_post_the_wizard(member_page, org_a):
    assert member_page.get("/connectors/new/").status_code == 403
    assert member_page.post("/connectors/new/", wizard_post()).status_code == 403
    assert not Connector.objects.filter(organization=org_a).exists()


# --- source page ----------------------------------------------------------------------------------


def test_progress_fragment_counts_samples_and_enables_save_at_fifty(owner_page, org_a):
    source = make_source(org_a, count=37)
    html = body(owner_page.get(f"/connectors/{source.pk}/progress/"))
    assert '<span id="sample-count">37</span> / 50' in html
    assert "hx-trigger" in html
    assert 'id="save-connector" disabled' in html
    ingest(source, records(13, start=38))
    html = body(owner_page.get(f"/connectors/{source.pk}/progress/"))
    assert '<span id="sample-count">50</span> / 50' in html
    assert 'id="save-connector" disabled' not in html
    assert "user50@example.com" in html  # the preview table


def test_saving_a_source_under_fifty_samples_is_refused_with_the_count(owner_page, org_a):
    source = make_source(org_a, count=12)
    response = owner_page.post(f"/connectors/{source.pk}/save/", follow=True)
    assert "12 of the 50" in body(response)
    source.source.refresh_from_db()
    assert source.source.state == "awaiting_samples"


def test_saving_a_source_with_fifty_samples_activates_it(owner_page, org_a):
    source = make_source(org_a, count=50)
    response = owner_page.post(f"/connectors/{source.pk}/save/", follow=True)
    source.source.refresh_from_db()
    assert source.source.state == "active"
    assert "pipelines can use it" in body(response)


def test_rotating_issues_a_new_url_and_the_old_one_stops_working(owner_page, org_a):
    created = owner_page.post("/connectors/new/", wizard_post(), follow=True)
    old = ingest_token_of(created)
    connector = Connector.objects.get(organization=org_a)
    rotated = owner_page.post(f"/connectors/{connector.pk}/rotate/", follow=True)
    new = ingest_token_of(rotated)
    assert new != old
    assert source_for_ingest_token(token=old) is None
    assert source_for_ingest_token(token=new).connector == connector


def test_member_sees_no_manage_buttons_and_their_posts_are_refused(member_page, org_a):
    source = make_source(org_a, count=50)
    html = body(member_page.get(f"/connectors/{source.pk}/"))
    assert "Save connector" not in html
    assert "Rotate ingest URL" not in html
    assert "Edit settings" not in html
    for action in ("save", "rotate", "delete", "duplicate", "edit"):
        assert member_page.post(f"/connectors/{source.pk}/{action}/").status_code == 403
    source.source.refresh_from_db()
    assert source.source.state == "ready"
    assert Connector.objects.filter(organization=org_a).count() == 1


# --- destination page, edit, duplicate, delete ---------------------------------------------------


def test_destination_page_masks_headers_and_edit_keeps_the_masked_secret(owner_page, org_a):
    destination = make_destination(org_a)
    html = body(owner_page.get(f"/connectors/{destination.pk}/"))
    assert "Bearer abcdef123456" not in html
    assert "••••3456" in html
    form = body(owner_page.get(f"/connectors/{destination.pk}/edit/"))
    assert "••••3456" in form
    assert "Bearer abcdef123456" not in form
    assert 'name="field_name"' not in form  # the schema is not editable
    response = owner_page.post(
        f"/connectors/{destination.pk}/edit/",
        {
            "name": "CRM v2",
            "url": "http://127.0.0.1:9/other",  # the same host: the masked secret is kept
            "method": "PATCH",
            "header_name": ["Authorization", "X-Tenant"],
            "header_value": ["••••3456", "acme"],
            "write_mode": "single",
            "batch_size": "250000",
            "timeout_seconds": "30",
        },
    )
    assert response.status_code == 302
    destination.refresh_from_db()
    destination.destination.refresh_from_db()
    assert destination.name == "CRM v2"
    assert destination.destination.method == "PATCH"
    assert destination.destination.decrypted_headers() == [
        ("Authorization", "Bearer abcdef123456"),
        ("X-Tenant", "acme"),
    ]


def test_edit_shows_errors_next_to_fields_and_changes_nothing(owner_page, org_a):
    destination = make_destination(org_a)
    response = owner_page.post(
        f"/connectors/{destination.pk}/edit/",
        {
            "name": "",
            "url": "http://127.0.0.1:9/hook",
            "method": "POST",
            "header_name": ["Content-Type"],
            "header_value": ["text/plain"],
            "write_mode": "batch",
            "batch_size": "many",
            "timeout_seconds": "30",
        },
    )
    assert response.status_code == 400
    html = body(response)
    assert 'id="name-errors"' in html
    assert 'id="batch-size-errors"' in html
    assert "set by osmos itself" in html
    destination.refresh_from_db()
    assert destination.name == "CRM"


def schema_post(connector) -> dict:
    """The duplicate wizard's schema rows as the page posts them, unchanged."""
    specs = connector.field_specs()
    return {
        "direction": connector.direction,
        "field_key": [f"f{i}" for i in range(len(specs))],
        "field_name": [name for name, _type, _nullable in specs],
        "field_type": [type_ for _name, type_, _nullable in specs],
        "field_nullable": [f"f{i}" for i, (_n, _t, nullable) in enumerate(specs) if nullable],
    }


def test_duplicating_a_source_gives_a_new_url_and_no_records(owner_page, org_a):
    source = make_source(org_a, count=50)
    response = owner_page.post(
        f"/connectors/{source.pk}/duplicate/",
        {"name": "Orders copy", **schema_post(source)},
        follow=True,
    )
    copy = Connector.objects.get(organization=org_a, name="Orders copy")
    assert copy.field_specs() == source.field_specs()
    assert source_for_ingest_token(token=ingest_token_of(response)).connector == copy
    assert not Record.objects.filter(connector=copy).exists()


def test_duplicating_with_a_taken_name_shows_the_error(owner_page, org_a):
    source = make_source(org_a)
    response = owner_page.post(
        f"/connectors/{source.pk}/duplicate/", {"name": "Orders", **schema_post(source)}
    )
    assert response.status_code == 400
    assert "already exists" in body(response)
    assert Connector.objects.filter(organization=org_a).count() == 1


def test_deleting_a_connector_used_by_a_pipeline_is_refused_naming_it(owner_page, org_a):
    source = make_source(org_a, count=50, save=True)
    destination = make_destination(org_a)
    pipeline_create(
        organization=org_a,
        name="Nightly sync",
        source_id=source.pk,
        destination_id=destination.pk,
        mapping={"id": "id", "email": "email", "total": "amount"},
    )
    confirm = body(owner_page.get(f"/connectors/{destination.pk}/delete/"))
    assert "Nightly sync" in confirm
    response = owner_page.post(f"/connectors/{destination.pk}/delete/", follow=True)
    assert "Nightly sync" in body(response)
    assert Connector.objects.filter(pk=destination.pk).exists()


def test_deleting_an_unused_connector_removes_it_with_its_records(owner_page, org_a):
    source = make_source(org_a, count=3)
    response = owner_page.post(f"/connectors/{source.pk}/delete/")
    assert response.status_code == 302
    assert not Connector.objects.filter(pk=source.pk).exists()
    assert not Record.objects.filter(organization=org_a).exists()


def test_test_request_to_an_unreachable_api_shows_the_failure(owner_page, org_a):
    destination = make_destination(org_a, url="http://127.0.0.1:9/hook")
    response = owner_page.post(f"/connectors/{destination.pk}/test/")
    assert response.status_code == 200
    html = body(response)
    assert 'id="test-result"' in html
    assert "The test request failed" in html


def test_member_cannot_send_a_test_request(member_page, org_a):
    destination = make_destination(org_a)
    assert "Send test request" not in body(member_page.get(f"/connectors/{destination.pk}/"))
    assert member_page.post(f"/connectors/{destination.pk}/test/").status_code == 403


# --- tenancy ----------------------------------------------------------------------------------


PAGES = ("", "progress/", "edit/", "duplicate/", "delete/")
POSTS = ("save/", "rotate/", "edit/", "duplicate/", "delete/", "test/")


def test_another_organizations_connector_is_404_on_every_page(outsider_page, org_a):
    source = make_source(org_a, count=50)
    destination = make_destination(org_a)
    for connector in (source, destination):
        for suffix in PAGES:
            assert outsider_page.get(f"/connectors/{connector.pk}/{suffix}").status_code == 404
        for suffix in POSTS:
            response = outsider_page.post(f"/connectors/{connector.pk}/{suffix}", {"name": "x"})
            assert response.status_code == 404, suffix
    assert Connector.objects.filter(organization=org_a).count() == 2
    source.source.refresh_from_db()
    assert source.source.state == "ready"


def test_malformed_connector_id_is_404_not_500(owner_page):
    assert owner_page.get("/connectors/not-a-uuid/").status_code == 404
    assert owner_page.post("/connectors/not-a-uuid/save/").status_code == 404


def test_curl_example_is_valid_json_matching_the_schema(owner_page, org_a):
    response = owner_page.post("/connectors/new/", wizard_post(), follow=True)
    html = body(response)
    payload = html.split("-d '")[1].split("'</code>")[0]
    assert json.loads(unescape(payload)) == [{"id": 42, "note": "text"}]
