"""The connectors admin: pages load, secrets never show, writes go through the services."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from connectors.models import Connector, DestinationSettings, SchemaField, SourceSettings
from ingest.models import Record
from pipelines.models import Pipeline
from tests.support.connectors import DESTINATION, SECRET
from tests.support.factories import add_records
from tests.support.schemas import CONTACTS as SCHEMA

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/connectors/connector/"


def change_url(connector) -> str:
    return f"{CHANGELIST}{connector.pk}/change/"


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser(
        username="support", email="support@osmos.example", password="pw-support-123"
    )
    client.force_login(user)
    return client


def form_data(response, **changes) -> dict:
    """The POST data of an admin change page as shown (management forms included)."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None or value is False:
            continue
        data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management.initial.get(name, 0)
        for index, inline_form in enumerate(inline.formset.forms):
            data[inline_form.add_prefix("id")] = inline_form.instance.pk
            data[inline_form.add_prefix(inline.formset.fk.name)] = inline_form.instance.connector_id
            assert index >= 0
    data.update(changes)
    return data


def test_the_changelist_loads_and_filters_by_direction(staff_client, destination_a, source_a):
    response = staff_client.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    assert "CRM contacts" in page
    assert "Shop orders" in page
    assert "Awaiting samples" in page
    filtered = staff_client.get(CHANGELIST, {"direction__exact": "source"}).content.decode()
    assert "Shop orders" in filtered
    assert "CRM contacts" not in filtered
    found = staff_client.get(CHANGELIST, {"q": "crm"}).content.decode()
    assert "CRM contacts" in found
    assert "Shop orders" not in found
    assert staff_client.get(CHANGELIST, {"source__state__exact": "active"}).status_code == 200


def test_the_destination_page_shows_masked_headers_and_no_secret(staff_client, destination_a):
    response = staff_client.get(change_url(destination_a))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Authorization: ••••9f3a" in page
    assert SECRET not in page
    assert "s3cret" not in page
    cipher = DestinationSettings.objects.get(connector=destination_a).headers_encrypted[0]["value"]
    assert cipher not in page
    assert DESTINATION["url"] in page


def test_the_source_page_never_shows_the_token_its_hash_or_lookup(staff_client, issued_source_a):
    source = issued_source_a.connector
    response = staff_client.get(change_url(source))
    assert response.status_code == 200
    page = response.content.decode()
    settings = SourceSettings.objects.get(connector=source)
    assert "Awaiting samples" in page
    assert issued_source_a.ingest_token not in page
    assert settings.token_hash not in page
    assert settings.token_lookup not in page


def test_the_schema_inline_is_read_only(staff_client, destination_a):
    response = staff_client.get(change_url(destination_a))
    page = response.content.decode()
    assert "signed_up" in page
    assert 'name="fields-0-name"' not in page
    assert 'name="fields-0-type"' not in page
    assert "fields-0-DELETE" not in page
    inline = next(
        i for i in response.context["inline_admin_formsets"] if i.formset.model is SchemaField
    )
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert not inline.has_delete_permission


def test_posting_schema_changes_in_the_admin_changes_nothing(staff_client, destination_a):
    response = staff_client.get(change_url(destination_a))
    data = form_data(
        response,
        **{
            "fields-0-name": "hacked",
            "fields-0-type": "json",
            "fields-0-DELETE": "on",
            "fields-TOTAL_FORMS": 4,
            "fields-3-name": "extra",
            "fields-3-type": "string",
            "fields-3-connector": str(destination_a.pk),
        },
    )
    response = staff_client.post(change_url(destination_a), data)
    assert response.status_code == 302
    assert destination_a.field_specs() == [(f["name"], f["type"], f["nullable"]) for f in SCHEMA]


def test_renaming_and_editing_settings_in_the_admin_goes_through_the_services(
    staff_client, destination_a
):
    response = staff_client.get(change_url(destination_a))
    data = form_data(response, name="Renamed by support", batch_size=77, method="PATCH")
    response = staff_client.post(change_url(destination_a), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    destination_a.refresh_from_db()
    settings = DestinationSettings.objects.get(connector=destination_a)
    assert destination_a.name == "Renamed by support"
    assert (settings.batch_size, settings.method) == (77, "PATCH")
    assert settings.decrypted_headers()[0] == ("Authorization", SECRET)


def test_an_unsafe_url_in_the_admin_is_refused_with_the_guard_message(
    staff_client, destination_a, settings
):
    response = staff_client.get(change_url(destination_a))
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    data = form_data(response, url="http://169.254.169.254/latest/")
    response = staff_client.post(change_url(destination_a), data)
    assert response.status_code == 200
    assert "metadata" in str(response.context["adminform"].form.errors["url"])
    assert DestinationSettings.objects.get(connector=destination_a).url == DESTINATION["url"]


def test_a_name_taken_in_the_organization_is_refused_in_the_admin(
    staff_client, destination_a, source_a
):
    response = staff_client.get(change_url(source_a))
    response = staff_client.post(change_url(source_a), form_data(response, name="crm contacts"))
    assert response.status_code == 200
    assert "already exists" in str(response.context["adminform"].form.errors["name"])
    source_a.refresh_from_db()
    assert source_a.name == "Shop orders"


def test_the_admin_cannot_add_connectors(staff_client):
    assert staff_client.get(f"{CHANGELIST}add/").status_code == 403


def test_deleting_a_source_in_the_admin_shows_counts_and_removes_its_records(
    staff_client, source_a
):
    add_records(source_a, 30)
    url = f"{CHANGELIST}{source_a.pk}/delete/"
    page = staff_client.get(url).content.decode()
    assert "Records: 30" in page or "records: 30" in page.lower()
    response = staff_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Connector.objects.exists()
    assert not Record.objects.exists()


def test_the_admin_refuses_to_delete_a_connector_used_by_a_pipeline(
    staff_client, org_a, destination_a, source_a
):
    Pipeline.objects.create(
        organization=org_a, name="Nightly sync", source=source_a, destination=destination_a
    )
    url = f"{CHANGELIST}{destination_a.pk}/delete/"
    page = staff_client.get(url).content.decode()
    assert "Nightly sync" in page
    staff_client.post(url, {"post": "yes"})
    assert Connector.objects.filter(pk=destination_a.pk).exists()
