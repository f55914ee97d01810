"""API routes of the tenancy app under ``/api/v1/``: members, invitations, tokens."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from osmos.tenancy.api import (
    ApiTokenViewSet,
    CurrentOrganizationView,
    InvitationViewSet,
    MemberViewSet,
)

router = SimpleRouter(use_regex_path=False)
router.register("members", MemberViewSet, basename="member")
router.register("invitations", InvitationViewSet, basename="invitation")
router.register("tokens", ApiTokenViewSet, basename="token")

urlpatterns = [
    *router.urls,
    path("organization/", CurrentOrganizationView.as_view(), name="api-organization"),
]
