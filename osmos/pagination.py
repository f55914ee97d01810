"""The API's two pagination classes and their one rule (SPEC §6, re-exported by ``osmos.api``).

``PageNumberPagination`` (``{"count", "next", "previous", "results"}``) is every list's
default; ``CursorPagination`` serves lists whose rows keep arriving. ``page_size`` is an integer
from 1 to ``MAX_PAGE_SIZE`` (1,000); anything else is a 400 naming ``page_size``, never a silent
clamp (a client asking for 5,000 must learn it gets at most 1,000). ``TenantScopedViewSet``
checks the rule too before any pagination class runs, so a view with a class of its own keeps
it. This module imports no view: DRF imports ``DEFAULT_PAGINATION_CLASS`` while it loads its
own views.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, pagination

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50
PAGE_SIZE_PARAM = "page_size"


def requested_page_size(request, default: int) -> int:
    """``?page_size=`` as an integer from 1 to ``MAX_PAGE_SIZE``; ``default`` when absent.

    Raises a 400 (``{"page_size": [...]}``) for anything else.
    """
    raw = request.query_params.get(PAGE_SIZE_PARAM)
    if raw is None or raw == "":
        return default
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise exceptions.ValidationError(
            {PAGE_SIZE_PARAM: [f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}."]}
        )
    return size


def _document_page_size(parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for parameter in parameters:
        if parameter.get("name") == PAGE_SIZE_PARAM:
            parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}
            parameter["description"] = (
                f"Results per page, 1 to {MAX_PAGE_SIZE} (400 outside that range)."
            )
    return parameters


class _PageSizeRule:
    """The page size rule of both classes: ``?page_size=`` checked and documented alike."""

    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = PAGE_SIZE_PARAM
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request) -> int:
        return requested_page_size(request, self.page_size)

    def get_schema_operation_parameters(self, view):
        return _document_page_size(super().get_schema_operation_parameters(view))


class PageNumberPagination(_PageSizeRule, pagination.PageNumberPagination):
    """``{"count", "next", "previous", "results"}`` pages: every list but cursor ones."""


class CursorPagination(_PageSizeRule, pagination.CursorPagination):
    """``{"next", "previous", "results"}`` pages, stable while rows arrive (set ``ordering``)."""
