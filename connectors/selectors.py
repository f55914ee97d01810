"""Reads of the connectors app. Every read takes the organization, with one exception:
``source_for_ingest_token``, where the token itself is the credential (see its docstring).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db.models import PROTECT, Prefetch, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from connectors.models import Connector, Direction, SchemaField, SourceSettings
from osmos.tenancy.models import Organization, secret_matches, split_lookup


def connector_list(
    *,
    organization: Organization,
    direction: str | None = None,
    search: str | None = None,
) -> QuerySet[Connector]:
    """The organization's connectors by name, with schema and settings loaded in 3 queries.

    ``direction``: only that direction (a value of ``Direction``; anything else matches none).
    ``search``: a case-insensitive substring of the name.
    """
    connectors = with_schema_and_settings(Connector.objects.for_organization(organization))
    if direction is not None:
        if direction not in Direction.values:
            return connectors.none()
        connectors = connectors.filter(direction=direction)
    if search:
        connectors = connectors.filter(Q(name__icontains=search.strip()))
    return connectors


def with_schema_and_settings(connectors: QuerySet[Connector]) -> QuerySet[Connector]:
    """``connectors`` by name, with schema and settings loaded in 3 queries."""
    return (
        connectors.select_related("destination", "source")
        .prefetch_related(Prefetch("fields", queryset=SchemaField.objects.order_by("position")))
        .order_by("name", "id")
    )


def connector_get(*, organization: Organization, connector_id: uuid.UUID | str) -> Connector | None:
    """The organization's connector with this id, or None (also for a malformed id).

    A connector of another organization is None exactly like a missing one.
    """
    try:
        connector_id = uuid.UUID(str(connector_id))
    except ValueError:
        return None
    return connector_list(organization=organization).filter(pk=connector_id).first()


def connector_users(*, organization: Organization) -> dict[uuid.UUID, list[str]]:
    """connector id -> names of the rows that use it (pipelines), sorted; one query per kind.

    Generic over every ``on_delete=PROTECT`` foreign key to Connector: the pipelines app plugs
    in by declaring its foreign keys, and connectors never imports it.
    """
    users: dict[uuid.UUID, set[str]] = {}
    for relation in Connector._meta.related_objects:
        if relation.on_delete is not PROTECT:
            continue
        rows = relation.related_model._default_manager.filter(organization=organization)
        for row in rows:
            users.setdefault(getattr(row, relation.field.attname), set()).add(str(row))
    return {connector_id: sorted(names) for connector_id, names in users.items()}


def source_for_ingest_token(*, token: str) -> SourceSettings | None:
    """The source settings (with their connector) whose ingest token is ``token``, or None.

    The only read that finds a connector without an organization: the ingest endpoint has no
    other credential, the token IS the proof of access (256 random bits, compared with the
    stored hash in constant time). Unknown, malformed and rotated tokens all give None, except
    a token rotated with a grace period, which still opens its source until the grace ends.
    """
    lookup = split_lookup(token)
    if lookup is None:
        return None
    candidates = SourceSettings.objects.select_related("connector", "connector__organization")
    for source in candidates.filter(token_lookup=lookup):
        if secret_matches(token, source.token_hash):
            return source
    # A token rotated with a grace period keeps working until its expiry (SPEC §4).
    in_grace = candidates.filter(
        previous_token_lookup=lookup, previous_token_expires_at__gt=timezone.now()
    )
    for source in in_grace:
        if secret_matches(token, source.previous_token_hash):
            return source
    return None


def ingest_url(*, token: str, request: HttpRequest | None = None) -> str:
    """The ingest URL of a token: ``/ingest/<token>/``, absolute when a base is known.

    The base is ``settings.PUBLIC_BASE_URL`` when set, else the request's scheme and host;
    without either, the path alone.
    """
    path = f"/ingest/{token}/"
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + path
    if request is not None:
        return request.build_absolute_uri(path)
    return path
