"""Who the database thinks is asking: one organization (confined) or the application (trusted).

A database connection starts *trusted*: it runs as the role it connected with, which owns the
tables and so is not bound by the policies (workers, the scheduler, management commands, the
admin, the ingest token lookup). ``confine`` switches the session to the unprivileged tenant
role and names the organization whose rows it may see and write; ``release`` switches back.
Both are session-level (``set_config(…, false)``) because Django runs in autocommit mode, and
the request middleware releases in a ``finally`` so a pooled connection never keeps a scope.

On SQLite (the embedded mode), or when the tenant role is missing or disabled by
``DATABASE_ROW_LEVEL_SECURITY=false``, every function here is a no-op: ORM scoping only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connections
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from osmos.rls.policies import ORGANIZATION_SETTING

logger = logging.getLogger(__name__)

# The scope of each connection wrapper: absent/None = trusted, "" = confined to no
# organization, else the confined organization's id. Kept on the wrapper so that a
# reconnection in the middle of a request re-applies it (see _reapply_scope).
_SCOPE_ATTRIBUTE = "osmos_rls_scope"
_AVAILABLE_ATTRIBUTE = "osmos_rls_available"


def enforcement_available(*, using: str = "default") -> bool:
    """Whether confining does anything here: PostgreSQL, enabled, and the role usable.

    Checked once per database name and cached on the connection wrapper.
    """
    connection = connections[using]
    if connection.vendor != "postgresql" or not settings.DATABASE_ROW_LEVEL_SECURITY:
        return False
    name = connection.settings_dict["NAME"]
    cached = getattr(connection, _AVAILABLE_ATTRIBUTE, None)
    if cached is not None and cached[0] == name:
        return cached[1]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s) "
            "THEN pg_has_role(session_user, %s, 'MEMBER') ELSE false END",
            [settings.DATABASE_TENANT_ROLE] * 2,
        )
        available = bool(cursor.fetchone()[0])
    if not available:
        logger.warning(
            "Row-level security is not enforced: role %s is missing or not granted to %s",
            settings.DATABASE_TENANT_ROLE,
            connection.settings_dict.get("USER") or "the application role",
        )
    setattr(connection, _AVAILABLE_ATTRIBUTE, (name, available))
    return available


def current_scope(*, using: str = "default") -> str | None:
    """None when trusted, else the confined organization id ("" for none)."""
    return getattr(connections[using], _SCOPE_ATTRIBUTE, None)


def _set_scope(connection, scope: str | None) -> None:
    role = settings.DATABASE_TENANT_ROLE if scope is not None else "none"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config(%s, %s, false), set_config('role', %s, false)",
            [ORGANIZATION_SETTING, scope or "", role],
        )


def confine(*, organization_id: uuid.UUID | str | None, using: str = "default") -> None:
    """From now on this connection sees and writes only ``organization_id``'s tenant rows.

    ``None`` confines to no organization at all (tenant tables look empty).
    """
    if not enforcement_available(using=using):
        return
    connection = connections[using]
    scope = str(organization_id) if organization_id else ""
    _set_scope(connection, scope)
    setattr(connection, _SCOPE_ATTRIBUTE, scope)


def release(*, using: str = "default") -> None:
    """Back to the trusted connecting role (a no-op when not confined)."""
    connection = connections[using]
    if getattr(connection, _SCOPE_ATTRIBUTE, None) is None:
        return
    setattr(connection, _SCOPE_ATTRIBUTE, None)
    if connection.connection is not None:
        _set_scope(connection, None)


def _restore(scope: str | None, using: str) -> None:
    if scope is None:
        release(using=using)
    else:
        confine(organization_id=scope or None, using=using)


@contextmanager
def tenant_scope(*, organization_id: uuid.UUID | str | None, using: str = "default") -> Iterator:
    """Confine to one organization for the block, then restore the previous scope."""
    previous = current_scope(using=using)
    confine(organization_id=organization_id, using=using)
    try:
        yield
    finally:
        _restore(previous, using)


@contextmanager
def trusted(*, using: str = "default") -> Iterator:
    """Run the block as the application (across organizations), then restore the scope.

    For the few lookups that must find a row before the organization is known, such as
    an API token by its secret. Keep such blocks to one query.
    """
    previous = current_scope(using=using)
    release(using=using)
    try:
        yield
    finally:
        _restore(previous, using)


@receiver(connection_created, dispatch_uid="osmos.rls.reapply_scope")
def _reapply_scope(sender, connection, **kwargs) -> None:
    # A connection re-opened in the middle of a confined request (health check, reconnect
    # after an error) starts trusted: put the request's scope back before anything runs.
    scope = getattr(connection, _SCOPE_ATTRIBUTE, None)
    if scope is not None and connection.vendor == "postgresql":
        _set_scope(connection, scope)
