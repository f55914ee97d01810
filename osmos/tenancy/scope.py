"""The pages' door to tenant data: one object of the current organization, or 404.

The API has the same door in ``osmos.api.TenantScopedViewSet``. An object of another
organization answers 404 exactly like a missing one, so ids cannot be probed.
"""

from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404

from osmos.tenancy.models import Organization, TenantModel

T = TypeVar("T", bound=TenantModel)


def tenant_object_or_404(
    model_or_queryset: type[T] | QuerySet[T], organization: Organization | None, **lookup
) -> T:
    """The one object of ``organization`` matching ``lookup``; ``Http404`` otherwise.

    ``model_or_queryset``: a tenant model or a queryset of one (to add ``select_related`` and
    the like); the organization filter is applied here whatever the queryset holds. A
    malformed lookup value (a bad UUID) is a 404 too. Fails closed: ``organization=None``
    raises ``ValueError`` instead of reading every organization.
    """
    if organization is None:
        raise ValueError("a tenant lookup needs an organization")
    queryset = (
        model_or_queryset._default_manager.all()
        if isinstance(model_or_queryset, type) and issubclass(model_or_queryset, Model)
        else model_or_queryset
    )
    try:
        return queryset.filter(organization=organization).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError, ValidationError):
        raise Http404(f"No such {queryset.model._meta.verbose_name}.") from None
