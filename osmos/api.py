"""The base of every tenant API view, and the API's error format.

``TenantScopedViewSet.get_queryset`` is final: subclasses implement
``scoped_queryset(organization)`` and so cannot forget the tenant scope. Objects of other
organizations are simply not in the queryset, so they answer 404 exactly like missing ones.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status, viewsets
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class TenantScopeMixin:
    """Gives views ``self.organization`` and a queryset that is always scoped to it."""

    member_actions: tuple[str, ...] = ()

    @property
    def organization(self):
        return self.request._request.organization

    @property
    def membership(self):
        return self.request._request.membership

    def get_queryset(self):
        organization = self.organization
        if organization is None:  # permissions refuse earlier; never serve unscoped data
            raise exceptions.NotAuthenticated()
        return self.scoped_queryset(organization)

    def scoped_queryset(self, organization):
        raise NotImplementedError(f"{type(self).__name__} must implement scoped_queryset")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides get_queryset; implement scoped_queryset instead"
            )


class TenantScopedViewSet(TenantScopeMixin, viewsets.GenericViewSet):
    lookup_field = "pk"


def exception_handler(exc, context):
    """DRF's handler, plus Django's ValidationError as 400; every body has ``detail``."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(response.data, dict) and "detail" not in response.data:
        if response.status_code == status.HTTP_400_BAD_REQUEST:
            response.data = {"detail": "Invalid input.", **response.data}
    elif isinstance(response.data, list):
        response.data = {"detail": response.data[0] if response.data else "Invalid input."}
    return response


def json_error(detail: str, status_code: int, **extra) -> Response:
    return Response({"detail": detail, **extra}, status=status_code)
