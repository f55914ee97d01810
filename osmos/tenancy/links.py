"""Links to an object of another organization the person belongs to (SPEC §2).

Such a page answers 404 (the object is not in the current organization) with a one-click
"switch to <organization>" form instead of a bare "Nothing here". For everyone else, and for
anything but a registered page, the 404 is the usual one, indistinguishable from a missing
object. The apps register their object pages (URL name → model and path argument) in their
``AppConfig.ready``, so this module imports none of them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import models
from django.http import Http404
from django.shortcuts import render

from osmos.rls import context as rls
from osmos.tenancy.selectors import membership_for


@dataclass(frozen=True)
class ObjectPage:
    model: type[models.Model]  # a TenantModel with a UUID primary key
    kwarg: str  # the URL argument holding its id


_PAGES: dict[str, ObjectPage] = {}


def register_page(view_name: str, *, model: type[models.Model], kwarg: str) -> None:
    """``view_name`` as Django resolves it, e.g. ``"connectors:detail"``."""
    _PAGES[view_name] = ObjectPage(model=model, kwarg=kwarg)


def _organization_of(page: ObjectPage, raw_id) -> uuid.UUID | None:
    try:
        object_id = uuid.UUID(str(raw_id))
    except ValueError:
        return None
    # Trusted: the object is, by definition, outside the request's organization.
    with rls.trusted():
        return (
            page.model.objects.filter(pk=object_id)
            .values_list("organization_id", flat=True)
            .first()
        )


def other_membership(request):
    """The person's membership of the organization owning the requested object, when that
    is another organization they belong to; else None."""
    match = request.resolver_match
    user = getattr(request, "user", None)
    if match is None or user is None or not user.is_authenticated:
        return None
    page = _PAGES.get(match.view_name)
    if page is None or page.kwarg not in match.kwargs:
        return None
    organization_id = _organization_of(page, match.kwargs[page.kwarg])
    current = getattr(request, "organization", None)
    if organization_id is None or (current is not None and organization_id == current.pk):
        return None
    return membership_for(user=user, organization_id=organization_id)


class OtherOrganizationLinkMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, Http404) or request.method not in ("GET", "HEAD"):
            return None
        membership = other_membership(request)
        if membership is None:
            return None
        return render(
            request,
            "tenancy/other_organization.html",
            {"status": 404, "target": membership.organization, "next": request.get_full_path()},
            status=404,
        )
