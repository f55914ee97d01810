"""Reads of the tenancy app. Tenant reads always take the organization."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from osmos.tenancy.models import ApiToken, Membership, Organization, Role


def memberships_of_user(*, user) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("organization__name")
    )


def membership_for(*, user, organization_id) -> Membership | None:
    """The user's membership of that organization; None for strangers and malformed ids."""
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        organization_id = uuid.UUID(str(organization_id))
    except ValueError:
        return None
    return (
        Membership.objects.filter(user=user, organization_id=organization_id)
        .select_related("organization")
        .first()
    )


def members_of(*, organization: Organization) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("user__email")
    )


def api_tokens_of(*, organization: Organization) -> QuerySet[ApiToken]:
    return ApiToken.objects.for_organization(organization).select_related("created_by")


def owner_count(*, organization: Organization) -> int:
    return Membership.objects.filter(organization=organization, role=Role.OWNER).count()
