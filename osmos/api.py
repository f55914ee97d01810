"""The base of every tenant API view, and the API's one error format.

**The tenant door.** ``TenantScopedViewSet`` builds the queryset itself: the tenant
``model``'s rows of the caller's organization. A subclass may only narrow that queryset in
``safely_get_queryset(queryset)``, and whatever it returns is filtered by the organization
again, so a careless narrowing (``Model.objects.all()``) still cannot reach another tenant.
``get_queryset`` and ``get_object`` are final. Objects of other organizations are simply not in
the queryset: they answer 404 exactly like missing ones. Without an organization the door
fails closed (401/403), on SQLite as on PostgreSQL.

**Pages.** Every list is paginated by one of the two classes of ``osmos.pagination``
(``PageNumberPagination`` by default, ``CursorPagination`` where rows keep arriving): one rule,
``page_size`` from 1 to ``MAX_PAGE_SIZE`` (1,000, SPEC §6), a 400 otherwise.

**Idempotency.** Every ``POST`` of a tenant view may carry ``Idempotency-Key``: the view set's
``initial`` claims the key and ``dispatch`` stores the answer (``osmos.idempotency``).

**Errors.** Every error of the API is an RFC 9457 problem document
(``application/problem+json``) with ``type``, ``title``, ``status`` and ``detail``; DRF's
field keys stay beside them. Services raise ``osmos.errors`` domain errors; ``STATUS_OF``
picks their status here, and ``exception_handler`` renders them, DRF's own exceptions and
Django's ``Http404``/``PermissionDenied``/``ValidationError`` the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, QuerySet
from rest_framework import exceptions, status, viewsets
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from osmos import errors, idempotency
from osmos.pagination import (
    MAX_PAGE_SIZE,
    CursorPagination,
    PageNumberPagination,
    requested_page_size,
)

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

# The HTTP status of each domain error, for the API (the ingest endpoint has its own table).
STATUS_OF: dict[type[errors.DomainError], int] = {
    errors.Malformed: status.HTTP_400_BAD_REQUEST,
    errors.InvalidInput: status.HTTP_400_BAD_REQUEST,
    errors.Missing: status.HTTP_404_NOT_FOUND,
    errors.Conflict: status.HTTP_409_CONFLICT,
    errors.LengthRequired: status.HTTP_411_LENGTH_REQUIRED,
    errors.TooLarge: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    errors.UnsupportedFormat: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    errors.Mismatch: status.HTTP_422_UNPROCESSABLE_ENTITY,
    errors.Unauthorized: status.HTTP_401_UNAUTHORIZED,
    errors.TooManyRequests: status.HTTP_429_TOO_MANY_REQUESTS,
}


def status_of(error: errors.DomainError, table: dict[type[errors.DomainError], int]) -> int:
    """The status ``table`` gives the most specific class of ``error``."""
    for cls in type(error).__mro__:
        if cls in table:
            return table[cls]
    raise TypeError(f"no HTTP status for {type(error).__name__}")


# --- pages: osmos/pagination.py (DRF imports its pagination class while it loads viewsets) ---

# Re-exported: views name ``osmos.api.CursorPagination`` and ``PageNumberPagination``.
__all__ = ["MAX_PAGE_SIZE", "CursorPagination", "PageNumberPagination", "TenantScopedViewSet"]


# --- the tenant door ----------------------------------------------------------------------------


class TenantScopedViewSet(viewsets.GenericViewSet):
    """Gives views ``self.organization`` and a queryset that is always scoped to it.

    Subclasses set ``model`` (a ``TenantModel``) and may implement
    ``safely_get_queryset(queryset)`` to narrow, order or prefetch.
    """

    model: type[Model] | None = None
    member_actions: tuple[str, ...] = ()
    lookup_field = "pk"
    # How ``InvalidInput`` errors of this view are keyed (see ``field_errors``).
    input_lists: tuple[str, ...] = ()
    input_objects: tuple[str, ...] = ()

    _FINAL = ("get_queryset", "get_object")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in cls._FINAL:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {name}; the tenant scope lives there. "
                    "Narrow the queryset in safely_get_queryset(queryset) instead."
                )

    @property
    def organization(self):
        return self.request._request.organization

    @property
    def membership(self):
        return self.request._request.membership

    def safely_get_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset

    def paginate_queryset(self, queryset):
        # The page_size rule holds whatever pagination class a view picks (osmos/pagination.py).
        requested_page_size(self.request, MAX_PAGE_SIZE)
        return super().paginate_queryset(queryset)

    # Idempotency-Key on every POST (osmos/idempotency.py): claimed once the caller is known,
    # answered from the store when it is a retry, completed or released when the view is done.
    _idempotency_claim: int | None = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self._idempotency_claim = idempotency.claim(request, self.organization)

    def handle_exception(self, exc):
        if isinstance(exc, idempotency.Replay):
            return exc.response()
        return super().handle_exception(exc)

    def dispatch(self, request, *args, **kwargs):
        self._idempotency_claim = None
        try:
            response = super().dispatch(request, *args, **kwargs)
        except BaseException:
            idempotency.release(self._idempotency_claim)
            raise
        idempotency.complete(self._idempotency_claim, response)
        return response

    def get_queryset(self) -> QuerySet:
        organization = self.organization
        if organization is None:  # permissions refuse earlier; never serve unscoped data
            raise exceptions.NotAuthenticated()
        if self.model is None:
            raise TypeError(f"{type(self).__name__} must name its tenant model")
        scoped = self.model._default_manager.filter(organization=organization)
        # Filter again: whatever the narrowing returned, it stays inside the organization.
        return self.safely_get_queryset(scoped).filter(organization=organization)


# --- errors -------------------------------------------------------------------------------------


def problem(status_code: int, detail: str, **members: Any) -> dict[str, Any]:
    """An RFC 9457 problem document; ``members`` are extension members (DRF's field keys…)."""
    return {
        "type": "about:blank",
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        **members,
    }


def field_errors(
    input_errors: Sequence[errors.InputError],
    *,
    lists: Sequence[str] = (),
    objects: Sequence[str] = (),
) -> dict[str, Any]:
    """``InputError`` values in DRF's field-keyed format.

    ``destination.url`` nests as ``{"destination": {"url": [message]}}``. A path that
    starts with one of ``lists`` is a list input: its errors are ``{index, field, message}``
    items (``field`` = the rest of the path, ``index``/``field`` null for the whole list). An
    error about one of ``objects`` as a whole is keyed ``non_field_errors`` inside it (as DRF
    does for nested serializers), so such a field's errors are always an object.
    """
    body: dict[str, Any] = {}
    for error in input_errors:
        path = error.field or "non_field_errors"
        list_path = next((p for p in lists if path == p or path.startswith(p + ".")), None)
        if list_path is not None:
            rest = path[len(list_path) + 1 :] or None
            item: Any = {"index": error.index, "field": rest, "message": error.message}
            path = list_path
        else:
            item = error.message
        if path in objects:
            path += ".non_field_errors"
        *parents, leaf = path.split(".")
        container = body
        for parent in parents:
            nested = container.setdefault(parent, {})
            if not isinstance(nested, dict):  # a whole-value error is already there
                nested = container[parent] = {"non_field_errors": nested}
            container = nested
        container.setdefault(leaf, []).append(item)
    return body


def _domain_response(exc: errors.DomainError, view) -> Response:
    code = status_of(exc, STATUS_OF)
    members = dict(exc.extra)
    if isinstance(exc, errors.InvalidInput):
        members.update(
            field_errors(
                exc.errors,
                lists=getattr(view, "input_lists", ()),
                objects=getattr(view, "input_objects", ()),
            )
        )
    return Response(problem(code, exc.detail, **members), status=code)


def _as_problem(data: Any, status_code: int) -> dict[str, Any]:
    if isinstance(data, dict):
        detail = data.pop("detail", None)
        if detail is None:
            detail = "Invalid input." if status_code == 400 else HTTPStatus(status_code).phrase
        if isinstance(detail, list):  # ValidationError({"detail": [...]})
            detail = detail[0] if detail else "Invalid input."
        return problem(status_code, str(detail), **data)
    if isinstance(data, list):
        return problem(status_code, str(data[0]) if data else "Invalid input.")
    return problem(status_code, str(data))


def exception_handler(exc, context):
    """Every API error as a problem document; None (a 500) for what is not an API error."""
    if isinstance(exc, errors.DomainError):
        set_rollback()
        response = _domain_response(exc, context.get("view"))
    else:
        if isinstance(exc, DjangoValidationError):
            exc = exceptions.ValidationError(
                exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
            )
        response = drf_exception_handler(exc, context)
        if response is None:
            return None
        response.data = _as_problem(response.data, response.status_code)
    renderer = getattr(context.get("request"), "accepted_renderer", None)
    if renderer is None or renderer.format == "json":
        response.content_type = PROBLEM_CONTENT_TYPE
    return response


def json_error(detail: str, status_code: int, **extra) -> Response:
    """A problem document answered directly (prefer raising an ``osmos.errors`` error)."""
    response = Response(problem(status_code, detail, **extra), status=status_code)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def document_problems(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular hook: every documented error response under ``/api/`` is
    ``application/problem+json`` and carries the problem members beside its own
    (``ProblemDetails`` in the components). The ingest endpoint keeps its plain JSON."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["ProblemDetails"] = {
        "type": "object",
        "description": "RFC 9457 problem document; field errors and named facts sit beside.",
        "properties": {
            "type": {"type": "string", "example": "about:blank"},
            "title": {"type": "string", "example": "Bad Request"},
            "status": {"type": "integer", "example": 400},
            "detail": {"type": "string"},
        },
        "required": ["type", "title", "status", "detail"],
    }
    problem_ref = {"$ref": "#/components/schemas/ProblemDetails"}
    for url, path in result.get("paths", {}).items():
        if not url.startswith("/api/"):
            continue
        for operation in path.values():
            for code, response in operation.get("responses", {}).items():
                if not str(code).startswith(("4", "5")):
                    continue
                content = response.get("content") or {"application/json": {}}
                documented = content.get("application/json", next(iter(content.values())))
                schema = documented.get("schema")
                body = {"allOf": [problem_ref, schema]} if schema else problem_ref
                response["content"] = {PROBLEM_CONTENT_TYPE: {**documented, "schema": body}}
    return result
