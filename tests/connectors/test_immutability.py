"""The schema of a saved connector never changes: model layer and PostgreSQL trigger.

(The API layer is tested in test_api.py, the admin in test_admin.py.)
"""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from connectors.models import Connector, ImmutableSchemaError, SchemaField
from connectors.services import connector_create, connector_delete
from osmos.tenancy.models import Organization
from tests.support.factories import add_records
from tests.support.schemas import CONTACTS as SCHEMA

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL only"
)


def specs(connector) -> list[tuple[str, str, bool]]:
    return [
        tuple(row)
        for row in SchemaField._base_manager.filter(connector=connector)
        .order_by("position")
        .values_list("name", "type", "nullable")
    ]


EXPECTED = [(f["name"], f["type"], f["nullable"]) for f in SCHEMA]


# --- model layer --------------------------------------------------------------------------------


def test_saving_a_changed_schema_field_is_refused_by_the_model(source_a):
    field = SchemaField.objects.get(connector=source_a, position=0)
    field.type = "json"
    with pytest.raises(ImmutableSchemaError, match="duplicate the connector"):
        field.save()
    assert specs(source_a) == EXPECTED


def test_deleting_a_schema_field_is_refused_by_the_model(source_a):
    with pytest.raises(ImmutableSchemaError):
        SchemaField.objects.get(connector=source_a, position=0).delete()
    assert specs(source_a) == EXPECTED


def test_bulk_update_and_delete_of_schema_fields_are_refused(source_a):
    with pytest.raises(ImmutableSchemaError):
        SchemaField.objects.filter(connector=source_a).update(nullable=True)
    with pytest.raises(ImmutableSchemaError):
        SchemaField.objects.filter(connector=source_a).delete()
    assert specs(source_a) == EXPECTED


# --- PostgreSQL trigger -------------------------------------------------------------------------


def run_sql(sql: str, params: list) -> None:
    """Run one statement in its own savepoint, so a refusal leaves the test's transaction usable."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@on_postgresql
def test_the_trigger_refuses_a_raw_sql_update_of_schema_rows(source_a):
    with pytest.raises(DatabaseError, match="cannot be changed"):
        run_sql(
            "UPDATE connectors_schemafield SET type = 'json' WHERE connector_id = %s", [source_a.pk]
        )
    assert specs(source_a) == EXPECTED


@on_postgresql
def test_the_trigger_refuses_a_raw_sql_delete_of_schema_rows(source_a):
    with pytest.raises(DatabaseError, match="cannot be changed"):
        run_sql("DELETE FROM connectors_schemafield WHERE connector_id = %s", [source_a.pk])
    assert specs(source_a) == EXPECTED


@on_postgresql
def test_the_trigger_refuses_an_orm_raw_delete_that_bypasses_the_model(source_a):
    rows = SchemaField._base_manager.filter(connector=source_a)
    with pytest.raises(DatabaseError), transaction.atomic():
        rows._raw_delete(rows.db)
    assert specs(source_a) == EXPECTED


@on_postgresql
def test_deleting_one_connector_does_not_unlock_the_schema_of_another(org_a, source_a):
    other = connector_create(organization=org_a, name="Other", direction="source", fields=SCHEMA)
    connector_delete(connector=source_a)  # marks source_a in this (the test's) transaction
    with pytest.raises(DatabaseError, match="cannot be changed"):
        run_sql("DELETE FROM connectors_schemafield WHERE connector_id = %s", [other.connector.pk])
    assert specs(other.connector) == EXPECTED


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_the_permission_to_delete_ends_with_the_deleting_transaction(org_a):
    first = connector_create(organization=org_a, name="First", direction="source", fields=SCHEMA)
    other = connector_create(organization=org_a, name="Other", direction="source", fields=SCHEMA)
    connector_delete(connector=first.connector)  # its own, committed transaction
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('osmos.deleting_connectors', true)")
        assert cursor.fetchone()[0] in (None, "")
    with pytest.raises(DatabaseError, match="cannot be changed"):
        run_sql("DELETE FROM connectors_schemafield WHERE connector_id = %s", [other.connector.pk])
    assert specs(other.connector) == EXPECTED


def test_deleting_the_connector_itself_deletes_its_schema_rows(org_a, source_a):
    add_records(source_a, 10)
    connector_delete(connector=source_a)
    assert not SchemaField._base_manager.filter(connector_id=source_a.pk).exists()


def test_a_plain_orm_delete_of_a_connector_works_with_the_trigger(destination_a):
    Connector.objects.get(pk=destination_a.pk).delete()
    assert not SchemaField._base_manager.exists()


def test_deleting_an_organization_cascades_through_its_connectors(org_a, destination_a, source_a):
    add_records(source_a, 5)
    Organization.objects.get(pk=org_a.pk).delete()
    assert not Connector.objects.exists()
    assert not SchemaField._base_manager.exists()
