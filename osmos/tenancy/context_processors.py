from __future__ import annotations

from osmos.tenancy.selectors import memberships_of_user


def organization(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "current_membership": membership or None,
        "current_organization": membership.organization if membership else None,
        "my_memberships": memberships_of_user(user=user),
    }
