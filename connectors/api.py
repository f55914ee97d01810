"""REST API of connectors: ``/api/v1/connectors/`` (SPEC §6).

The views are thin: the services validate every value and write; this module checks only the
shape of the request (a JSON object with known keys) and renders connectors and errors.

Errors are RFC 9457 problem documents rendered by ``osmos.api.exception_handler`` from the
services' ``InvalidInput``, with DRF's field keys beside ``detail``::

    {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "...",
     "name": ["A connector named “Orders” already exists in this organization."],
     "schema": [{"index": 2, "field": "type", "message": "type must be one of ..."}],
     "destination": {"url": ["localhost resolves to 127.0.0.1, a loopback address."],
                     "headers": [{"index": 0, "field": "value", "message": "..."}]}}

``schema`` and ``destination.headers`` errors are lists of ``{index, field, message}``
(``index``/``field`` null when the error is about the whole list); other keys hold messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from connectors import api_docs
from connectors.health import destination_resume
from connectors.models import Connector, Direction
from connectors.selectors import connector_get, connector_list, with_schema_and_settings
from connectors.serializers import ConnectorSerializer
from connectors.services import (
    ConnectorWithToken,
    connector_create,
    connector_delete,
    connector_duplicate,
    connector_update,
    destination_rotate_signing_secret,
    source_rotate_token,
)
from connectors.validation import DIRECTION_IMMUTABLE_MESSAGE, SCHEMA_IMMUTABLE_MESSAGE
from osmos.api import TenantScopedViewSet
from osmos.errors import InputError, InvalidInput, raise_if_any
from osmos.parsers import DepthLimitedJSONParser

# Inputs that are lists (their errors say which item) and objects (an error about the whole
# object is its non_field_errors): see osmos.api.field_errors.
INPUT_LISTS = ("schema", "destination.headers")
INPUT_OBJECTS = ("destination", "source")


def _json_object(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidInput([InputError(field="non_field_errors", message=_NOT_AN_OBJECT)])
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

    model = Connector
    serializer_class = ConnectorSerializer
    parser_classes = [DepthLimitedJSONParser]
    input_lists = INPUT_LISTS
    input_objects = INPUT_OBJECTS

    def safely_get_queryset(self, queryset):
        return with_schema_and_settings(queryset)

    def _render(self, connector: Connector, *, code: int = 200, issued=None):
        # Re-read so the response shows what is stored (schema order, masked headers).
        fresh = connector_get(organization=self.organization, connector_id=connector.pk)
        context = {"request": self.request, "issued": issued}
        return Response(ConnectorSerializer(fresh, context=context).data, status=code)

    def _render_issued(self, result: ConnectorWithToken, *, code: int):
        """The connector with the secrets just issued, shown in this response only."""
        return self._render(result.connector, code=code, issued=result)

    def list(self, request):
        direction = request.query_params.get("direction")
        if direction is not None and direction not in Direction.values:
            message = f"Must be one of {', '.join(Direction.values)}."
            raise InvalidInput([InputError(field="direction", message=message)])
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
        body = _json_object(request.data)
        allowed = ("name", "direction", "schema", "destination", "source")
        raise_if_any(_unknown_key_errors(body, allowed))
        result = connector_create(
            organization=self.organization,
            name=body.get("name"),
            direction=body.get("direction"),
            fields=body.get("schema"),
            destination=body.get("destination"),
            source=body.get("source"),
        )
        return self._render_issued(result, code=status.HTTP_201_CREATED)

    @api_docs.partial_update_docs
    def partial_update(self, request, pk=None):
        connector = self.get_object()
        body = _json_object(request.data)
        raise_if_any(_unknown_key_errors(body, ("name", "destination", "source")))
        result = connector_update(
            connector=connector,
            name=_present_or_invalid(body, "name"),
            destination=_present_or_invalid(body, "destination"),
            source=_present_or_invalid(body, "source"),
        )
        return self._render_issued(result, code=status.HTTP_200_OK)

    @api_docs.destroy_docs
    def destroy(self, request, pk=None):
        connector_delete(connector=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @api_docs.duplicate_docs
    @action(detail=True, methods=["post"])
    def duplicate(self, request, pk=None):
        connector = self.get_object()
        body = _json_object(request.data)
        raise_if_any(_unknown_key_errors(body, ("name", "schema")))
        result = connector_duplicate(
            connector=connector,
            name=body.get("name"),
            # Omitted: the original's schema; an explicit null is refused, like on create.
            fields=_present_or_invalid(body, "schema"),
        )
        return self._render_issued(result, code=status.HTTP_201_CREATED)

    @api_docs.rotate_token_docs
    @action(detail=True, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request, pk=None):
        connector = self.get_object()
        body = _json_object(request.data or {})
        raise_if_any(_unknown_key_errors(body, ("grace_hours",)))
        result = source_rotate_token(connector=connector, grace_hours=body.get("grace_hours"))
        return self._render_issued(result, code=status.HTTP_200_OK)

    @api_docs.rotate_signing_secret_docs
    @action(detail=True, methods=["post"], url_path="rotate-signing-secret")
    def rotate_signing_secret(self, request, pk=None):
        connector = self.get_object()
        _json_object(request.data or {})
        result = destination_rotate_signing_secret(connector=connector)
        return self._render_issued(result, code=status.HTTP_200_OK)

    @api_docs.resume_docs
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        connector = self.get_object()
        if connector.is_source:
            message = "Only a destination can be resumed."
            raise InvalidInput([InputError(field="direction", message=message)])
        destination_resume(connector=connector)  # NotPaused is a Conflict: 409
        return self._render(connector)
