"""Row-level security policies on PostgreSQL: defence in depth under the ORM's tenant scoping.

Which tables:
- every table of a concrete ``TenantModel`` subclass: a row is visible and writable only when
  its ``organization_id`` equals the session setting ``osmos.organization_id``;
- every table that holds tenant data without an organization column, found as a concrete model
  (not a tenant model) with a required foreign key to a tenant model — a connector's schema
  fields, destination and source settings: a row is visible when its parent row is visible.

Both lists are computed from the models at every ``migrate``, so a new tenant table gets its
policy without anyone writing a migration for it (``tables_without_policy`` finds the gaps and
a test fails on any).

Whom they bind: roles subject to RLS, i.e. neither superusers nor the tables' owner. The tables
are deliberately not ``FORCE``d: PostgreSQL refuses ``COPY FROM`` into a table whose policies
apply to the caller, and ingest stores records with ``COPY``; so trusted code (workers, the
scheduler, the admin, the ingest token lookup and insert) runs as the connecting role, which
owns the tables, and tenant requests run as the unprivileged ``settings.DATABASE_TENANT_ROLE``
(``osmos.rls.context``). A raw query as that role without the setting sees no row at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connections, models, transaction

from osmos.tenancy.models import TenantModel

logger = logging.getLogger(__name__)

POLICY_NAME = "osmos_tenant_isolation"
ORGANIZATION_SETTING = "osmos.organization_id"
# NULLIF: an empty setting (a confined request without an organization) matches no row,
# where a bare ''::uuid cast would raise an error instead.
_CURRENT_ORGANIZATION = f"NULLIF(current_setting('{ORGANIZATION_SETTING}', true), '')::uuid"


@dataclass(frozen=True)
class ProtectedTable:
    """One table and the SQL condition its rows must meet to be seen or written."""

    table: str
    condition: str


def _concrete(model: type[models.Model]) -> bool:
    meta = model._meta
    return meta.managed and not meta.proxy and not meta.abstract and not meta.swapped


def tenant_models() -> list[type[models.Model]]:
    """Every concrete model that inherits ``TenantModel`` (rows with an ``organization_id``)."""
    return [m for m in apps.get_models() if issubclass(m, TenantModel) and _concrete(m)]


def _tenant_parent_field(model: type[models.Model]) -> models.ForeignKey | None:
    """The first required foreign key of ``model`` to a tenant model, if any."""
    for field in model._meta.concrete_fields:
        target = field.related_model if field.is_relation else None
        if (
            isinstance(field, models.ForeignKey)
            and not field.null
            and target is not None
            and issubclass(target, TenantModel)
        ):
            return field
    return None


def protected_tables(*, quote) -> list[ProtectedTable]:
    """The tables that get a policy, with their condition; ``quote`` quotes identifiers."""
    tables = [
        ProtectedTable(
            table=model._meta.db_table,
            condition=f"{quote('organization_id')} = {_CURRENT_ORGANIZATION}",
        )
        for model in tenant_models()
    ]
    for model in apps.get_models():
        if issubclass(model, TenantModel) or not _concrete(model):
            continue
        parent_field = _tenant_parent_field(model)
        if parent_field is None:
            continue
        parent = parent_field.related_model._meta
        target_column = parent_field.target_field.column
        # The parent table has its own policy, so the sub-select sees only visible parents.
        # Identifiers come from the models and are quoted: no user input reaches this SQL.
        condition = (
            f"EXISTS (SELECT 1 FROM {quote(parent.db_table)} AS parent "  # noqa: S608
            f"WHERE parent.{quote(target_column)} = "
            f"{quote(model._meta.db_table)}.{quote(parent_field.column)})"
        )
        tables.append(ProtectedTable(table=model._meta.db_table, condition=condition))
    return tables


def tenant_role() -> str:
    return settings.DATABASE_TENANT_ROLE


def _role_exists(cursor, role: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    return cursor.fetchone() is not None


def _ensure_role(cursor, role: str, quote) -> bool:
    """Create the tenant role when missing and let the connecting role switch to it.

    Needs CREATEROLE (or a superuser) the first time; without it, logs what the database
    administrator must run and returns False.
    """
    if not _role_exists(cursor, role):
        try:
            with transaction.atomic(using=cursor.db.alias):
                cursor.execute(f"CREATE ROLE {quote(role)} NOLOGIN NOSUPERUSER NOBYPASSRLS")
        except DatabaseError:
            # Created meanwhile by another migrate of the same cluster, or not allowed.
            if not _role_exists(cursor, role):
                logger.warning(
                    "Row-level security: role %s is missing and could not be created; "
                    "run as a superuser: CREATE ROLE %s NOLOGIN; GRANT %s TO <app role>;",
                    role,
                    role,
                    role,
                )
                return False
    cursor.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')", [role])
    if not cursor.fetchone()[0]:
        try:
            with transaction.atomic(using=cursor.db.alias):
                cursor.execute(f"GRANT {quote(role)} TO CURRENT_USER")
        except DatabaseError:
            logger.warning(
                "Row-level security: the application role cannot switch to %s; "
                "run as a superuser: GRANT %s TO <app role>;",
                role,
                role,
            )
            return False
    return True


def _already_applied(cursor, tables: list[ProtectedTable], role: str) -> bool:
    cursor.execute(
        """
        SELECT count(*) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
        JOIN pg_policies p ON p.schemaname = n.nspname AND p.tablename = c.relname
        WHERE c.relname = ANY(%s) AND c.relrowsecurity AND p.policyname = %s
          AND has_table_privilege(%s, c.oid, 'SELECT, INSERT, UPDATE, DELETE')
        """,
        [[t.table for t in tables], POLICY_NAME, role],
    )
    (count,) = cursor.fetchone()
    if count != len(tables):
        return False
    # Every other table (Django's own, sessions, …) must be usable by the role too.
    cursor.execute(
        """
        SELECT count(*) FROM pg_tables
        WHERE schemaname = current_schema()
          AND NOT has_table_privilege(%s, format('%%I.%%I', schemaname, tablename),
                                      'SELECT, INSERT, UPDATE, DELETE')
        """,
        [role],
    )
    return cursor.fetchone()[0] == 0


def apply_policies(*, using: str = "default", force: bool = False) -> bool:
    """Create the tenant role (if allowed), grant it the tables, and (re)create every policy.

    Idempotent, and cheap when nothing changed (unless ``force``). A no-op returning False on
    databases other than PostgreSQL, and when the role cannot be created; True when the
    policies are in place.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    quote = connection.ops.quote_name
    role = tenant_role()
    tables = protected_tables(quote=quote)
    with connection.cursor() as cursor:
        if not _ensure_role(cursor, role, quote):
            return False
        if not force and _already_applied(cursor, tables, role):
            return True
        with transaction.atomic(using=using):
            cursor.execute("SELECT current_schema()")
            schema = quote(cursor.fetchone()[0])
            cursor.execute(f"GRANT USAGE ON SCHEMA {schema} TO {quote(role)}")
            cursor.execute(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} "
                f"TO {quote(role)}"
            )
            cursor.execute(
                f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {quote(role)}"
            )
            for protected in tables:
                table = quote(protected.table)
                cursor.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
                cursor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
                cursor.execute(f"DROP POLICY IF EXISTS {POLICY_NAME} ON {table}")
                cursor.execute(
                    f"CREATE POLICY {POLICY_NAME} ON {table} "
                    f"USING ({protected.condition}) WITH CHECK ({protected.condition})"
                )
    return True


def tables_without_policy(*, using: str = "default") -> list[str]:
    """Tables that should carry the tenant policy but do not (empty = all protected)."""
    connection = connections[using]
    tables = protected_tables(quote=connection.ops.quote_name)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
            JOIN pg_policies p ON p.schemaname = n.nspname AND p.tablename = c.relname
            WHERE c.relrowsecurity AND p.policyname = %s
            """,
            [POLICY_NAME],
        )
        protected = {row[0] for row in cursor.fetchall()}
    return sorted(t.table for t in tables if t.table not in protected)


def apply_after_migrate(sender, using: str = "default", **kwargs) -> None:
    apply_policies(using=using)
