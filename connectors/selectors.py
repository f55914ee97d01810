"""Reads of the connectors app. Every read takes the organization, with one exception:
``source_for_ingest_token``, where the token itself is the credential (see its docstring).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet
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
    connectors = (
        Connector.objects.for_organization(organization)
        .select_related("destination", "source")
        .prefetch_related(Prefetch("fields", queryset=SchemaField.objects.order_by("position")))
        .order_by("name", "id")
    )
    if direction is not None:
        if direction not in Direction.values:
            return connectors.none()
        connectors = connectors.filter(direction=direction)
    if search:
        connectors = connectors.filter(Q(name__icontains=search.strip()))
    return connectors


def connector_get(*, organization: Organization, connector_id: uuid.UUID | str) -> Connector | None:
    """The organization's connector with this id, or None (also for a malformed id).

    A connector of another organization is None exactly like a missing one.
    """
    try:
        connector_id = uuid.UUID(str(connector_id))
    except ValueError:
        return None
    return connector_list(organization=organization).filter(pk=connector_id).first()


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
