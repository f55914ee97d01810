"""REST API of connectors: ``/api/v1/connectors/`` (SPEC §6).

The views are thin: the services validate every value and write; this module checks only the
shape of the request (a JSON object with known keys) and renders connectors and errors.

Validation errors are ``400`` with DRF's field-keyed format plus a ``detail``::

    {"detail": "...",
     "name": ["A connector named “Orders” already exists in this organization."],
     "schema": [{"index": 2, "field": "type", "message": "type must be one of ..."}],
     "destination": {"url": ["localhost resolves to 127.0.0.1, a loopback address."],
                     "headers": [{"index": 0, "field": "value", "message": "..."}]}}

``schema`` and ``destination.headers`` errors are lists of ``{index, field, message}``
(``index``/``field`` null when the error is about the whole list); other keys hold messages.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from connectors import api_docs
from connectors.health import NotPaused, destination_resume
from connectors.models import Connector, Direction
from connectors.selectors import connector_get, connector_list
from connectors.serializers import ConnectorSerializer
from connectors.services import (
    ConnectorError,
    ConnectorInUse,
    ConnectorWithToken,
    InputError,
    connector_create,
    connector_delete,
    connector_duplicate,
    connector_update,
    source_rotate_token,
)
from connectors.validation import (
    DIRECTION_IMMUTABLE_MESSAGE,
    SCHEMA_IMMUTABLE_MESSAGE,
    raise_if_any,
)
from osmos.api import TenantScopedViewSet, json_error

# --- errors -------------------------------------------------------------------------------------

# Inputs that are lists: their errors say which item (index) and which key of it (field).
_ITEMIZED_FIELDS = frozenset({"schema", "destination.headers"})
# Fields whose value is an object: an error about the object as a whole is keyed
# ``non_field_errors`` inside it (as DRF does for nested serializers), so the field's errors
# are always an object.
_OBJECT_FIELDS = frozenset({"destination"})


def errors_response(errors: Sequence[InputError]) -> Response:
    """``400`` in DRF's field-keyed format (see the module docstring), with a ``detail``."""
    body: dict[str, Any] = {}
    for error in errors:
        top, _, sub = error.field.partition(".")
        if top in _OBJECT_FIELDS and not sub:
            sub = "non_field_errors"
        container = body.setdefault(top, {}) if sub else body
        if not isinstance(container, dict):  # a whole-object error is already there
            container = {}
        if error.field in _ITEMIZED_FIELDS:
            item: Any = {"index": error.index, "field": error.key, "message": error.message}
        else:
            item = error.message
        container.setdefault(sub or top, []).append(item)
    detail = errors[0].message if len(errors) == 1 else "Invalid input; see the errors by field."
    return Response({"detail": detail, **body}, status=status.HTTP_400_BAD_REQUEST)


def _json_object(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ConnectorError([InputError(field="non_field_errors", message=_NOT_AN_OBJECT)])
    return data


_NOT_AN_OBJECT = "The request body must be a JSON object."


def _unknown_key_errors(body: Mapping[str, Any], allowed: Sequence[str]) -> list[InputError]:
    unknown = f"Unknown or read-only field; accepted: {', '.join(allowed)}."
    fixed = {"schema": SCHEMA_IMMUTABLE_MESSAGE, "direction": DIRECTION_IMMUTABLE_MESSAGE}
    return [
        InputError(field=str(key), message=fixed.get(key, unknown))
        for key in body
        if key not in allowed
    ]


def _present_or_invalid(body: Mapping[str, Any], key: str) -> Any:
    """``body[key]``; an explicit null becomes "" so the service refuses it (None = not given)."""
    if key not in body:
        return None
    return "" if body[key] is None else body[key]


# --- the viewset ---------------------------------------------------------------------------------


@api_docs.list_and_retrieve_docs
class ConnectorViewSet(TenantScopedViewSet):
    """Connectors of the caller's organization. Owners, admins and tokens write; members read."""

    serializer_class = ConnectorSerializer
    parser_classes = [JSONParser]

    def scoped_queryset(self, organization):
        return connector_list(organization=organization)

    def get_object(self) -> Connector:
        try:
            connector_id = uuid.UUID(str(self.kwargs["pk"]))
        except ValueError:
            raise NotFound() from None
        connector = self.get_queryset().filter(pk=connector_id).first()
        if connector is None:
            raise NotFound()
        self.check_object_permissions(self.request, connector)
        return connector

    def _render(self, connector: Connector, *, code: int = 200, token: str | None = None):
        # Re-read so the response shows what is stored (schema order, masked headers).
        fresh = connector_get(organization=self.organization, connector_id=connector.pk)
        context = {"request": self.request, "ingest_token": token}
        return Response(ConnectorSerializer(fresh, context=context).data, status=code)

    def _render_issued(self, result: ConnectorWithToken, *, code: int):
        return self._render(result.connector, code=code, token=result.ingest_token)

    def list(self, request):
        direction = request.query_params.get("direction")
        if direction is not None and direction not in Direction.values:
            message = f"Must be one of {', '.join(Direction.values)}."
            return errors_response([InputError(field="direction", message=message)])
        connectors = connector_list(
            organization=self.organization,
            direction=direction,
            search=request.query_params.get("search"),
        )
        page = self.paginate_queryset(connectors)
        return self.get_paginated_response(ConnectorSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(ConnectorSerializer(self.get_object()).data)

    @api_docs.create_docs
    def create(self, request):
        try:
            body = _json_object(request.data)
            raise_if_any(_unknown_key_errors(body, ("name", "direction", "schema", "destination")))
            result = connector_create(
                organization=self.organization,
                name=body.get("name"),
                direction=body.get("direction"),
                fields=body.get("schema"),
                destination=body.get("destination"),
            )
        except ConnectorError as exc:
            return errors_response(exc.errors)
        return self._render_issued(result, code=status.HTTP_201_CREATED)

    @api_docs.partial_update_docs
    def partial_update(self, request, pk=None):
        connector = self.get_object()
        try:
            body = _json_object(request.data)
            raise_if_any(_unknown_key_errors(body, ("name", "destination")))
            connector_update(
                connector=connector,
                name=_present_or_invalid(body, "name"),
                destination=_present_or_invalid(body, "destination"),
            )
        except ConnectorError as exc:
            return errors_response(exc.errors)
        return self._render(connector)

    @api_docs.destroy_docs
    def destroy(self, request, pk=None):
        try:
            connector_delete(connector=self.get_object())
        except ConnectorInUse as exc:
            return json_error(str(exc), status.HTTP_409_CONFLICT, pipelines=exc.pipeline_names)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @api_docs.duplicate_docs
    @action(detail=True, methods=["post"])
    def duplicate(self, request, pk=None):
        connector = self.get_object()
        try:
            body = _json_object(request.data)
            raise_if_any(_unknown_key_errors(body, ("name",)))
            result = connector_duplicate(connector=connector, name=body.get("name"))
        except ConnectorError as exc:
            return errors_response(exc.errors)
        return self._render_issued(result, code=status.HTTP_201_CREATED)

    @api_docs.rotate_token_docs
    @action(detail=True, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request, pk=None):
        try:
            result = source_rotate_token(connector=self.get_object())
        except ConnectorError as exc:
            return errors_response(exc.errors)
        return self._render_issued(result, code=status.HTTP_200_OK)

    @api_docs.resume_docs
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        connector = self.get_object()
        if connector.is_source:
            return json_error("Only a destination can be resumed.", status.HTTP_400_BAD_REQUEST)
        try:
            destination_resume(connector=connector)
        except NotPaused as exc:
            return json_error(str(exc), status.HTTP_409_CONFLICT)
        return self._render(connector)
