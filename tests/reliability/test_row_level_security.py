"""Row-level security on PostgreSQL: the database itself keeps tenants apart.

The tests connect as a superuser, whom PostgreSQL never binds by policies; so each test
switches (inside its transaction) to the unprivileged tenant role the application uses for
tenant requests, and proves what a raw query sees there.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory
from rest_framework.request import Request

from connectors.models import Connector, DestinationSettings, SchemaField
from osmos.rls import context
from osmos.rls.middleware import RowLevelSecurityMiddleware
from osmos.rls.policies import protected_tables, tables_without_policy, tenant_models
from osmos.tenancy.authentication import ApiTokenAuthentication
from osmos.tenancy.models import ApiToken

pytestmark = pytest.mark.skipif(
    not settings.DATABASE_IS_POSTGRES,
    reason="row-level security exists only on PostgreSQL (SQLite: ORM scoping only)",
)


def _connector(organization, name: str) -> Connector:
    connector = Connector.objects.create(
        organization=organization, name=name, direction="destination"
    )
    SchemaField.objects.create(connector=connector, position=0, name="id", type="integer")
    settings_row = DestinationSettings(connector=connector, url="https://api.example.com/in")
    settings_row.set_headers([("Authorization", "Bearer very-secret-value")])
    settings_row.save()
    return connector


@pytest.fixture
def two_tenants(org_a, org_b, token_a, token_b):
    return _connector(org_a, "orders A"), _connector(org_b, "orders B")


def _raw(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _as_tenant_role(organization_id=None) -> None:
    """Inside the test's transaction: become the tenant role, optionally naming an org."""
    _raw(f"SET LOCAL ROLE {connection.ops.quote_name(settings.DATABASE_TENANT_ROLE)}")
    if organization_id is not None:
        _raw("SELECT set_config('osmos.organization_id', %s, true)", [str(organization_id)])


@pytest.mark.django_db
def test_every_tenant_table_and_its_child_tables_have_a_policy():
    assert tables_without_policy() == []
    tables = {t.table for t in protected_tables(quote=connection.ops.quote_name)}
    # The known tenant tables, and the children that hold tenant data without an org column.
    assert {
        "tenancy_apitoken",
        "connectors_connector",
        "connectors_destinationsettings",
        "connectors_sourcesettings",
        "connectors_schemafield",
        "ingest_record",
        "ingest_idempotencykey",
    } <= tables
    assert {m._meta.db_table for m in tenant_models()} <= tables


@pytest.mark.django_db
def test_a_new_table_without_its_policy_is_reported():
    table = Connector._meta.db_table
    with transaction.atomic():
        _raw(f"DROP POLICY osmos_tenant_isolation ON {table}")
        assert tables_without_policy() == [table]
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_a_raw_query_as_the_tenant_role_without_the_setting_sees_no_rows(two_tenants):
    tables = [t.table for t in protected_tables(quote=connection.ops.quote_name)]
    assert _raw("SELECT count(*) FROM connectors_connector") == [(2,)]  # as the owner
    _as_tenant_role()
    for table in tables:
        assert _raw(f"SELECT count(*) FROM {table}") == [(0,)], table


@pytest.mark.django_db
def test_a_raw_query_with_the_setting_sees_only_that_organizations_rows(two_tenants, org_a):
    own, _ = two_tenants
    _as_tenant_role(org_a.pk)
    assert _raw("SELECT id FROM connectors_connector") == [(own.pk,)]
    assert _raw("SELECT connector_id FROM connectors_destinationsettings") == [(own.pk,)]
    assert _raw("SELECT DISTINCT connector_id FROM connectors_schemafield") == [(own.pk,)]
    assert _raw("SELECT organization_id FROM tenancy_apitoken") == [(org_a.pk,)]


@pytest.mark.django_db
def test_the_tenant_role_cannot_write_a_row_of_another_organization(two_tenants, org_a, org_b):
    _, theirs = two_tenants
    _as_tenant_role(org_a.pk)
    # Invisible rows cannot be updated or deleted: zero rows affected.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE connectors_connector SET name = 'stolen' WHERE id = %s", [theirs.pk])
        assert cursor.rowcount == 0
        cursor.execute(
            "DELETE FROM connectors_destinationsettings WHERE connector_id = %s", [theirs.pk]
        )
        assert cursor.rowcount == 0
    # And a row cannot be inserted into (or moved to) another organization.
    with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
        _raw(
            "INSERT INTO connectors_connector (id, organization_id, name, direction, "
            "created_at, updated_at) VALUES (gen_random_uuid(), %s, 'x', 'source', now(), now())",
            [org_b.pk],
        )


def _middleware_seeing(sql: str):
    """The middleware around a view that runs one raw, unscoped query."""

    def view(request):
        if request.META.get("HTTP_AUTHORIZATION"):
            ApiTokenAuthentication().authenticate(Request(request))
        request.rows = _raw(sql)
        request.user_in_view = _raw("SELECT current_user")[0][0]
        from django.http import HttpResponse

        return HttpResponse("ok")

    return RowLevelSecurityMiddleware(view)


@pytest.mark.django_db
def test_a_session_request_sees_only_its_organization_even_unscoped(two_tenants, org_a, owner):
    request = RequestFactory().get("/connectors/")
    request.user, request.organization = owner, org_a
    _middleware_seeing("SELECT organization_id FROM connectors_connector")(request)
    assert request.rows == [(org_a.pk,)]
    assert request.user_in_view == settings.DATABASE_TENANT_ROLE
    # After the request the connection is the application's again (pooled connections).
    assert _raw("SELECT current_user, current_setting('osmos.organization_id', true)") == [
        (connection.settings_dict["USER"] or "postgres", "")
    ]


@pytest.mark.django_db
def test_a_token_request_sees_only_the_tokens_organization_even_unscoped(
    two_tenants, token_b, org_b
):
    request = RequestFactory().get("/api/v1/connectors/", HTTP_AUTHORIZATION=f"Bearer {token_b}")
    request.organization = None
    _middleware_seeing("SELECT organization_id FROM connectors_connector")(request)
    assert request.rows == [(org_b.pk,)]


@pytest.mark.django_db
def test_an_anonymous_request_sees_no_tenant_row(two_tenants):
    request = RequestFactory().get("/login/")
    request.organization = None
    _middleware_seeing("SELECT count(*) FROM connectors_connector")(request)
    assert request.rows == [(0,)]


@pytest.mark.django_db
def test_ingest_and_staff_admin_requests_stay_trusted(two_tenants, owner):
    request = RequestFactory().post("/ingest/osm_whatever/")
    request.organization = None
    _middleware_seeing("SELECT count(*) FROM connectors_connector")(request)
    assert request.rows == [(2,)]
    owner.is_staff = True
    request = RequestFactory().get("/admin/connectors/connector/")
    request.user, request.organization = owner, None
    _middleware_seeing("SELECT count(*) FROM connectors_connector")(request)
    assert request.rows == [(2,)]


@pytest.mark.django_db
def test_a_non_staff_user_on_admin_urls_is_confined(two_tenants, owner, org_a):
    request = RequestFactory().get("/admin/")
    request.user, request.organization = owner, org_a
    _middleware_seeing("SELECT organization_id FROM connectors_connector")(request)
    assert request.rows == [(org_a.pk,)]


@pytest.mark.django_db
def test_trusted_block_inside_a_scope_restores_the_scope(two_tenants, org_a):
    with context.tenant_scope(organization_id=org_a.pk):
        with context.trusted():
            assert _raw("SELECT count(*) FROM connectors_connector") == [(2,)]
        assert _raw("SELECT count(*) FROM connectors_connector") == [(1,)]
    assert context.current_scope() is None
    assert _raw("SELECT count(*) FROM connectors_connector") == [(2,)]


@pytest.mark.django_db
def test_the_api_works_under_enforcement_and_lists_only_own_rows(two_tenants, api_a):
    response = api_a.get("/api/v1/connectors/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [c["name"] for c in body["results"]] == ["orders A"]
    assert ApiToken.objects.count() == 2  # the test's connection is trusted again


@pytest.mark.django_db
def test_a_failing_view_still_gives_the_connection_back_unconfined(two_tenants, owner, org_a):
    def broken_view(request):
        assert _raw("SELECT current_user")[0][0] == settings.DATABASE_TENANT_ROLE
        raise RuntimeError("the view failed")

    request = RequestFactory().get("/connectors/")
    request.user, request.organization = owner, org_a
    with pytest.raises(RuntimeError):
        RowLevelSecurityMiddleware(broken_view)(request)
    assert context.current_scope() is None
    assert _raw("SELECT count(*) FROM connectors_connector") == [(2,)]


@pytest.mark.django_db
def test_the_command_reapplies_and_checks_the_policies(two_tenants):
    from django.core.management import call_command

    # The fixtures' foreign-key checks are deferred to the test's commit; ALTER TABLE (which
    # the command runs) refuses tables with pending checks, so run them now.
    _raw("SET CONSTRAINTS ALL IMMEDIATE")
    table = Connector._meta.db_table
    _raw(f"DROP POLICY osmos_tenant_isolation ON {table}")
    with pytest.raises(CommandError, match=table):
        call_command("apply_row_level_security", "--check")
    call_command("apply_row_level_security")
    assert tables_without_policy() == []
