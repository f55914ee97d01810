"""Connector services and selectors: validation, secrets, duplicate, delete, token rotation."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import RequestFactory

from connectors.models import Connector, DestinationSettings, SchemaField, SourceSettings
from connectors.selectors import (
    connector_get,
    connector_list,
    ingest_url,
    source_for_ingest_token,
)
from connectors.services import (
    ConnectorInUse,
    connector_create,
    connector_delete,
    connector_duplicate,
    connector_update,
    source_rotate_token,
)
from ingest.models import Record
from osmos import crypto
from osmos.errors import InputError, InvalidInput
from tests.support.connectors import DESTINATION, SECRET
from tests.support.factories import add_records
from tests.support.schemas import CONTACTS as SCHEMA

pytestmark = pytest.mark.django_db


def create_destination(org, **overrides):
    values = {
        "organization": org,
        "name": "Dest",
        "direction": "destination",
        "fields": SCHEMA,
        "destination": DESTINATION,
        **overrides,
    }
    return connector_create(**values).connector


def errors_of(call, **kwargs) -> list[InputError]:
    with pytest.raises(InvalidInput) as caught:
        call(**kwargs)
    return caught.value.errors


def fields_of(errors: list[InputError]) -> set[str]:
    return {error.field for error in errors}


# --- create -------------------------------------------------------------------------------------


def test_a_destination_is_created_with_its_schema_in_order_and_its_settings(destination_a):
    assert destination_a.field_specs() == [
        ("email", "string", False),
        ("age", "integer", True),
        ("signed_up", "datetime", False),
    ]
    settings = DestinationSettings.objects.get(connector=destination_a)
    assert (settings.url, settings.method, settings.write_mode) == (
        "http://127.0.0.1:8824/v2/notify",
        "PUT",
        "batch",
    )
    assert (settings.batch_size, settings.split_failed_batches, settings.timeout_seconds) == (
        1000,
        True,
        12,
    )
    assert settings.decrypted_headers() == [("Authorization", SECRET), ("X-Team", "crm")]


def test_destination_settings_not_given_take_the_spec_defaults(org_a, allow_loopback):
    connector = create_destination(org_a, destination={"url": "http://127.0.0.1/hook"})
    settings = DestinationSettings.objects.get(connector=connector)
    assert settings.method == "POST"
    assert settings.headers_encrypted == []
    assert settings.write_mode == "batch"
    assert settings.batch_size == 250_000
    assert settings.split_failed_batches is False
    assert settings.timeout_seconds == 30


def test_header_values_are_encrypted_in_the_stored_column(destination_a):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT headers_encrypted FROM connectors_destinationsettings WHERE connector_id = %s",
            [destination_a.pk.hex if connection.vendor == "sqlite" else destination_a.pk],
        )
        (raw,) = cursor.fetchone()
    raw = raw if isinstance(raw, str) else str(raw)
    assert "Authorization" in raw  # the row was found; names are not secret
    assert SECRET not in raw
    assert "s3cret" not in raw
    assert "crm" not in raw.replace("X-Team", "")


def test_a_source_is_created_awaiting_samples_with_a_token_stored_only_as_a_hash(
    issued_source_a,
):
    token = issued_source_a.ingest_token
    source = SourceSettings.objects.get(connector=issued_source_a.connector)
    assert source.state == "awaiting_samples"
    assert source.record_count == 0
    assert len(token) >= 40  # 256 random bits, url-safe
    assert token not in (source.token_hash, source.token_lookup)
    assert source_for_ingest_token(token=token) == source
    assert not DestinationSettings.objects.filter(connector=issued_source_a.connector).exists()


def test_every_invalid_part_of_a_create_is_reported_and_nothing_is_written(org_a, allow_loopback):
    errors = errors_of(
        connector_create,
        organization=org_a,
        name="  ",
        direction="sideways",
        fields=[{"name": "a", "type": "text", "nullable": False}, {"name": "a"}],
        destination=None,
    )
    assert {field.partition(".")[0] for field in fields_of(errors)} == {
        "name",
        "direction",
        "schema",
    }
    schema_errors = {(e.index, e.field) for e in errors if e.field.startswith("schema")}
    assert (0, "schema.type") in schema_errors
    assert (1, "schema.name") in schema_errors  # used twice
    assert (1, "schema.type") in schema_errors  # missing
    assert not Connector.objects.exists()
    assert not SchemaField.objects.exists()


def test_an_empty_schema_is_refused(org_a):
    errors = errors_of(
        connector_create, organization=org_a, name="S", direction="source", fields=[]
    )
    assert errors == [
        InputError(field="schema", message="a schema needs at least one field", index=None)
    ]


def test_a_name_already_used_in_the_organization_is_refused_whatever_its_case(
    org_a, org_b, source_a
):
    errors = errors_of(
        connector_create, organization=org_a, name="shop ORDERS", direction="source", fields=SCHEMA
    )
    assert fields_of(errors) == {"name"}
    assert "already exists" in errors[0].message
    # Another organization may use the same name.
    other = connector_create(
        organization=org_b, name="Shop orders", direction="source", fields=SCHEMA
    )
    assert other.connector.organization == org_b


def test_names_are_stripped_and_limited_to_200_characters(org_a):
    created = connector_create(
        organization=org_a, name="  Padded  ", direction="source", fields=SCHEMA
    )
    assert created.connector.name == "Padded"
    errors = errors_of(
        connector_create, organization=org_a, name="x" * 201, direction="source", fields=SCHEMA
    )
    assert fields_of(errors) == {"name"}


def test_a_destination_needs_a_url_and_a_source_takes_no_destination_settings(org_a):
    errors = errors_of(create_destination, org=org_a, destination=None)
    assert fields_of(errors) == {"destination"}
    errors = errors_of(create_destination, org=org_a, destination={"method": "POST"})
    assert fields_of(errors) == {"destination.url"}
    errors = errors_of(
        connector_create,
        organization=org_a,
        name="S",
        direction="source",
        fields=SCHEMA,
        destination={"url": "http://127.0.0.1/"},
    )
    assert fields_of(errors) == {"destination"}


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("batch_size", 0),
        ("batch_size", 250_001),
        ("batch_size", True),
        ("batch_size", "100"),
        ("batch_size", 10.5),
        ("timeout_seconds", 0),
        ("timeout_seconds", 301),
        ("method", "GET"),
        ("method", "post"),
        ("write_mode", "stream"),
        ("split_failed_batches", "yes"),
        ("split_failed_batches", 1),
        ("headers", "Authorization: x"),
        ("headers", [{"name": "A"}]),
        ("headers", [{"name": "Bad Name", "value": "v"}]),
        ("headers", [{"name": "X-A", "value": "one\r\nX-Injected: yes"}]),
        ("headers", [{"name": "X-A", "value": "line\nbreak"}]),
        ("headers", [{"name": "X-A", "value": ""}]),
        ("headers", [{"name": "X-A", "value": "snow ☃"}]),
        ("headers", [{"name": "Content-Length", "value": "1"}]),
        ("headers", [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]),
        ("headers", [{"name": "X-A", "value": "••••1234"}]),
        ("proxy", "http://evil/"),
    ],
)
def test_invalid_destination_settings_are_refused_by_setting(org_a, allow_loopback, setting, value):
    errors = errors_of(create_destination, org=org_a, destination={**DESTINATION, setting: value})
    # A header's own problems are on its name or value; the list's, on the list.
    lists = {e.field.removesuffix(".name").removesuffix(".value") for e in errors}
    assert lists == {f"destination.{setting}"}
    assert all(error.message for error in errors)
    assert not Connector.objects.exists()


def test_header_errors_name_the_header_index_and_key(org_a, allow_loopback):
    headers = [{"name": "X-Ok", "value": "fine"}, {"name": "X-A", "value": "a\rb"}]
    errors = errors_of(
        create_destination, org=org_a, destination={**DESTINATION, "headers": headers}
    )
    assert [(e.field, e.index) for e in errors] == [("destination.headers.value", 1)]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:8000/hook",
        "http://[::1]/hook",
        "ftp://example.com/",
        "http://user:pw@127.0.0.1/",
        "not a url",
    ],
)
def test_unsafe_urls_are_refused_at_create(org_a, refuse_private, url):
    errors = errors_of(create_destination, org=org_a, destination={**DESTINATION, "url": url})
    assert fields_of(errors) == {"destination.url"}
    assert not Connector.objects.exists()


def test_cloud_metadata_is_refused_even_when_everything_is_allow_listed(org_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["0.0.0.0/0"]
    errors = errors_of(
        create_destination, org=org_a, destination={"url": "http://169.254.169.254/"}
    )
    assert "metadata" in errors[0].message


def test_unsafe_urls_are_refused_at_update(destination_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    for url in (
        "http://127.0.0.1/x",
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://localhost/",
    ):
        errors = errors_of(connector_update, connector=destination_a, destination={"url": url})
        assert fields_of(errors) == {"destination.url"}
    assert DestinationSettings.objects.get(connector=destination_a).url == DESTINATION["url"]


# --- update -------------------------------------------------------------------------------------


def test_update_renames_and_changes_only_the_given_settings(destination_a):
    before = destination_a.updated_at
    connector_update(
        connector=destination_a,
        name="CRM v2",
        destination={"batch_size": 10, "write_mode": "single"},
    )
    destination_a.refresh_from_db()
    settings = DestinationSettings.objects.get(connector=destination_a)
    assert destination_a.name == "CRM v2"
    assert destination_a.updated_at > before
    assert (settings.batch_size, settings.write_mode, settings.method) == (10, "single", "PUT")
    assert settings.decrypted_headers() == [("Authorization", SECRET), ("X-Team", "crm")]


def test_a_masked_header_value_sent_back_keeps_the_stored_secret(destination_a):
    stored_cipher = DestinationSettings.objects.get(connector=destination_a).headers_encrypted[0]
    connector_update(
        connector=destination_a,
        destination={
            "headers": [
                {"name": "Authorization", "value": crypto.mask(SECRET)},
                {"name": "X-Team", "value": "billing"},
            ]
        },
    )
    settings = DestinationSettings.objects.get(connector=destination_a)
    assert settings.decrypted_headers() == [("Authorization", SECRET), ("X-Team", "billing")]
    assert settings.headers_encrypted[0] == stored_cipher  # not even re-encrypted


def test_a_masked_value_that_matches_no_stored_header_is_refused(destination_a):
    errors = errors_of(
        connector_update,
        connector=destination_a,
        destination={"headers": [{"name": "X-Other", "value": crypto.mask(SECRET)}]},
    )
    assert [(e.field, e.index) for e in errors] == [("destination.headers.value", 0)]
    errors = errors_of(
        connector_update,
        connector=destination_a,
        destination={"headers": [{"name": "Authorization", "value": "••••zzzz"}]},
    )
    assert fields_of(errors) == {"destination.headers.value"}
    settings = DestinationSettings.objects.get(connector=destination_a)
    assert settings.decrypted_headers()[0] == ("Authorization", SECRET)


def test_a_new_header_value_replaces_the_secret_and_omitted_headers_are_removed(destination_a):
    connector_update(
        connector=destination_a,
        destination={"headers": [{"name": "Authorization", "value": "Bearer new-token-1234"}]},
    )
    settings = DestinationSettings.objects.get(connector=destination_a)
    assert settings.decrypted_headers() == [("Authorization", "Bearer new-token-1234")]


def test_update_refuses_a_name_taken_by_another_connector_but_keeps_its_own(
    destination_a, source_a
):
    errors = errors_of(connector_update, connector=destination_a, name="shop orders")
    assert fields_of(errors) == {"name"}
    connector_update(connector=destination_a, name="crm CONTACTS")
    assert Connector.objects.get(pk=destination_a.pk).name == "crm CONTACTS"


def test_a_source_has_no_destination_settings_to_update(source_a):
    errors = errors_of(connector_update, connector=source_a, destination={"batch_size": 5})
    assert fields_of(errors) == {"destination"}


def test_an_invalid_update_writes_nothing(destination_a):
    errors = errors_of(
        connector_update,
        connector=destination_a,
        name="Renamed",
        destination={"batch_size": 5, "timeout_seconds": 0},
    )
    assert fields_of(errors) == {"destination.timeout_seconds"}
    destination_a.refresh_from_db()
    assert destination_a.name == "CRM contacts"
    assert DestinationSettings.objects.get(connector=destination_a).batch_size == 1000


# --- duplicate ----------------------------------------------------------------------------------


def test_a_duplicated_destination_copies_schema_and_settings_and_keeps_its_headers(destination_a):
    copy = connector_duplicate(connector=destination_a, name="CRM copy")
    assert copy.ingest_token is None
    duplicate = copy.connector
    assert duplicate.pk != destination_a.pk
    assert duplicate.direction == "destination"
    assert duplicate.field_specs() == destination_a.field_specs()
    original = DestinationSettings.objects.get(connector=destination_a)
    settings = DestinationSettings.objects.get(connector=duplicate)
    assert settings.decrypted_headers() == original.decrypted_headers()
    assert (settings.url, settings.method, settings.batch_size, settings.timeout_seconds) == (
        original.url,
        original.method,
        original.batch_size,
        original.timeout_seconds,
    )
    assert DestinationSettings.objects.get(connector=destination_a).connector_id == destination_a.pk


def test_a_duplicated_source_gets_a_new_token_no_records_and_awaits_samples(issued_source_a):
    source = issued_source_a.connector
    add_records(source, 3)
    SourceSettings.objects.filter(connector=source).update(
        state="active", record_count=3, last_sequence=3
    )
    copy = connector_duplicate(connector=source, name="Shop orders copy")
    settings = SourceSettings.objects.get(connector=copy.connector)
    assert settings.state == "awaiting_samples"
    assert (settings.record_count, settings.last_sequence) == (0, 0)
    assert not Record.objects.filter(connector=copy.connector).exists()
    assert copy.ingest_token != issued_source_a.ingest_token
    assert source_for_ingest_token(token=copy.ingest_token).connector == copy.connector
    assert source_for_ingest_token(token=issued_source_a.ingest_token).connector == source
    assert copy.connector.field_specs() == source.field_specs()


def test_a_duplicate_needs_a_new_unique_name(source_a):
    assert fields_of(errors_of(connector_duplicate, connector=source_a, name="Shop Orders")) == {
        "name"
    }
    assert fields_of(errors_of(connector_duplicate, connector=source_a, name="")) == {"name"}
    assert Connector.objects.count() == 1


# --- delete -------------------------------------------------------------------------------------


def test_deleting_a_destination_removes_its_schema_and_settings(destination_a):
    connector_delete(connector=destination_a)
    assert not Connector.objects.exists()
    assert not SchemaField.objects.exists()
    assert not DestinationSettings.objects.exists()


def test_deleting_a_source_removes_its_records_and_leaves_other_connectors_alone(org_a, source_a):
    other = connector_create(organization=org_a, name="Other", direction="source", fields=SCHEMA)
    add_records(source_a, 120)
    add_records(other.connector, 2)
    connector_delete(connector=source_a)
    assert list(Connector.objects.all()) == [other.connector]
    assert Record.objects.filter(connector=other.connector).count() == 2
    assert Record.objects.count() == 2
    assert SchemaField.objects.filter(connector=other.connector).count() == len(SCHEMA)
    assert SchemaField.objects.count() == len(SCHEMA)


# --- rotate -------------------------------------------------------------------------------------


def test_rotating_the_token_makes_the_old_one_stop_matching(issued_source_a):
    old = issued_source_a.ingest_token
    rotated = source_rotate_token(connector=issued_source_a.connector)
    assert rotated.ingest_token != old
    assert source_for_ingest_token(token=old) is None
    found = source_for_ingest_token(token=rotated.ingest_token)
    assert found.connector == issued_source_a.connector
    assert found.token_rotated_at is not None


def test_a_destination_has_no_token_to_rotate(destination_a):
    errors = errors_of(source_rotate_token, connector=destination_a)
    assert fields_of(errors) == {"direction"}


def test_unknown_malformed_and_near_miss_tokens_find_no_source(issued_source_a):
    token = issued_source_a.ingest_token
    assert source_for_ingest_token(token="") is None
    assert source_for_ingest_token(token="not-a-token") is None
    assert source_for_ingest_token(token=token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert source_for_ingest_token(token=token + "x") is None


# --- selectors ----------------------------------------------------------------------------------


def test_connector_list_filters_by_direction_and_name_within_the_organization(
    org_a, org_b, destination_a, source_a
):
    connector_create(organization=org_b, name="Shop orders B", direction="source", fields=SCHEMA)
    assert list(connector_list(organization=org_a)) == [destination_a, source_a]
    assert list(connector_list(organization=org_a, direction="source")) == [source_a]
    assert list(connector_list(organization=org_a, direction="bogus")) == []
    assert list(connector_list(organization=org_a, search="crm")) == [destination_a]
    assert list(connector_list(organization=org_a, search="orders")) == [source_a]


def test_connector_get_answers_none_for_another_organization_or_a_malformed_id(
    org_a, org_b, source_a
):
    assert connector_get(organization=org_a, connector_id=source_a.pk) == source_a
    assert connector_get(organization=org_a, connector_id=str(source_a.pk)) == source_a
    assert connector_get(organization=org_b, connector_id=source_a.pk) is None
    assert connector_get(organization=org_a, connector_id="12345") is None


def test_ingest_url_prefers_the_public_base_url_then_the_request_host(settings):
    settings.PUBLIC_BASE_URL = ""
    assert ingest_url(token="osm_abc") == "/ingest/osm_abc/"
    request = RequestFactory().get("/", HTTP_HOST="127.0.0.1:9000")
    assert ingest_url(token="osm_abc", request=request) == "http://127.0.0.1:9000/ingest/osm_abc/"
    settings.PUBLIC_BASE_URL = "https://osmos.example.com"
    assert (
        ingest_url(token="osm_abc", request=request) == "https://osmos.example.com/ingest/osm_abc/"
    )


def test_deleting_a_connector_used_by_pipelines_is_refused_naming_them(
    org_a, destination_a, source_a
):
    from pipelines.models import Pipeline

    for name in ("Nightly sync", "Hourly sync"):
        Pipeline.objects.create(
            organization=org_a, name=name, source=source_a, destination=destination_a
        )
    for connector in (source_a, destination_a):
        with pytest.raises(ConnectorInUse) as caught:
            connector_delete(connector=connector)
        assert caught.value.pipeline_names == ["Hourly sync", "Nightly sync"]
        assert "Hourly sync, Nightly sync" in str(caught.value)
    assert Connector.objects.count() == 2
    assert SchemaField.objects.count() == 2 * len(SCHEMA)


def test_a_schema_may_be_given_as_field_specs(org_a):
    from connectors.schema import FieldSpec

    created = connector_create(
        organization=org_a,
        name="Specs",
        direction="source",
        fields=[FieldSpec("id", "integer", False), FieldSpec("note", "json", True)],
    )
    assert created.connector.field_specs() == [("id", "integer", False), ("note", "json", True)]


def test_a_name_that_is_not_text_is_refused_as_such(org_a):
    errors = errors_of(
        connector_create, organization=org_a, name=12, direction="source", fields=SCHEMA
    )
    assert errors == [InputError(field="name", message="The name must be text.")]
