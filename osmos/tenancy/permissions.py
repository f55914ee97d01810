"""DRF permissions: callers must act for an organization; writes need a manager role."""

from __future__ import annotations

from rest_framework import permissions


class IsOrganizationMember(permissions.BasePermission):
    """Authenticated and acting for an organization.

    Unsafe methods need the owner/admin role unless the view lists the action in
    ``member_actions`` (e.g. running a pipeline is open to members).
    """

    message = "You do not have permission to change this organization's data."

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        membership = getattr(request._request, "membership", None)
        if membership is None:
            self.message = "You are not a member of any organization."
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        if getattr(view, "action", None) in getattr(view, "member_actions", ()):
            return True
        return membership.can_manage
