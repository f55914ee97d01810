"""Sets ``request.organization`` and ``request.membership`` for people using the web UI.

The organization is the one chosen with the switcher (kept in the session), else the
person's first. API requests authenticated by token get theirs from the token instead
(see ``authentication.py``).
"""

from __future__ import annotations

from osmos.tenancy.selectors import membership_for, memberships_of_user

SESSION_KEY = "organization_id"


def current_membership(request):
    user = request.user
    if not user.is_authenticated:
        return None
    chosen = request.session.get(SESSION_KEY)
    membership = membership_for(user=user, organization_id=chosen) if chosen else None
    if membership is None:
        membership = memberships_of_user(user=user).first()
        if membership is not None:
            request.session[SESSION_KEY] = str(membership.organization_id)
    return membership


class OrganizationMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        membership = current_membership(request)
        request.membership = membership
        request.organization = membership.organization if membership else None
        return self.get_response(request)
