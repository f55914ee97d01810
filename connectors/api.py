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

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from connectors.models import MAX_BATCH_SIZE, Connector, Direction, HttpMethod, WriteMode
from connectors.schema import FIELD_TYPES
from connectors.selectors import connector_get, connector_list, ingest_url
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
from osmos.api import TenantScopedViewSet, json_error

# --- serializers (responses; request serializers exist for the OpenAPI schema) --------------


class SchemaFieldSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    type = serializers.ChoiceField(choices=FIELD_TYPES)
    nullable = serializers.BooleanField()


class HeaderSerializer(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.CharField(
        help_text="Write: the plain value. Read: always masked (••••1234). Sending back the "
        "masked value of a stored header keeps the stored secret."
    )


class DestinationSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="Absolute http(s) URL, port allowed.")
    method = serializers.ChoiceField(choices=HttpMethod.values, default=HttpMethod.POST)
    headers = HeaderSerializer(many=True, required=False)
    write_mode = serializers.ChoiceField(choices=WriteMode.values, default=WriteMode.BATCH)
    batch_size = serializers.IntegerField(
        min_value=1, max_value=MAX_BATCH_SIZE, default=MAX_BATCH_SIZE
    )
    split_failed_batches = serializers.BooleanField(default=False)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=300, default=30)


class DestinationPatchSerializer(DestinationSerializer):
    """Only the settings to change; ``headers`` replaces the whole list."""

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            field.required = False
        return fields


class SourceSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["awaiting_samples", "ready", "active"])
    sample_count = serializers.IntegerField()
    samples_required = serializers.IntegerField()
    ingest_url = serializers.URLField(
        required=False,
        help_text="Only in the responses that create it: create, duplicate, rotate-token.",
    )


class ConnectorSerializer(serializers.Serializer):
    """A connector as SPEC §6 shows it. Header values are masked; the token is never shown."""

    id = serializers.UUIDField(read_only=True)
    name = serializers.CharField()
    direction = serializers.ChoiceField(choices=Direction.values)
    schema = SchemaFieldSerializer(many=True)
    destination = DestinationSerializer(allow_null=True)
    source = SourceSerializer(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, connector: Connector) -> dict[str, Any]:
        as_time = serializers.DateTimeField().to_representation
        return {
            "id": str(connector.pk),
            "name": connector.name,
            "direction": connector.direction,
            "schema": [
                {"name": f.name, "type": f.type, "nullable": f.nullable}
                for f in connector.fields.all()
            ],
            "destination": None if connector.is_source else self._destination(connector),
            "source": self._source(connector) if connector.is_source else None,
            "created_at": as_time(connector.created_at),
            "updated_at": as_time(connector.updated_at),
        }

    @staticmethod
    def _destination(connector: Connector) -> dict[str, Any]:
        settings_ = connector.destination
        return {
            "url": settings_.url,
            "method": settings_.method,
            "headers": settings_.masked_headers(),
            "write_mode": settings_.write_mode,
            "batch_size": settings_.batch_size,
            "split_failed_batches": settings_.split_failed_batches,
            "timeout_seconds": settings_.timeout_seconds,
        }

    def _source(self, connector: Connector) -> dict[str, Any]:
        source = connector.source
        data = {
            "state": source.state,
            "sample_count": source.record_count,
            "samples_required": settings.INGEST_SAMPLES_REQUIRED,
        }
        token = self.context.get("ingest_token")
        if token:
            data["ingest_url"] = ingest_url(token=token, request=self.context.get("request"))
        return data


class ConnectorCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    direction = serializers.ChoiceField(choices=Direction.values)
    schema = SchemaFieldSerializer(many=True, help_text="Immutable once created.")
    destination = DestinationSerializer(
        required=False, allow_null=True, help_text="Required for a destination; null for a source."
    )


class ConnectorPatchSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    destination = DestinationPatchSerializer(required=False)


class DuplicateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, help_text="The new connector's name.")


# --- errors -------------------------------------------------------------------------------------

# Inputs that are lists: their errors say which item (index) and which key of it (field).
_ITEMIZED_FIELDS = frozenset({"schema", "destination.headers"})


def errors_response(errors: Sequence[InputError]) -> Response:
    """``400`` in DRF's field-keyed format (see the module docstring), with a ``detail``."""
    body: dict[str, Any] = {}
    for error in errors:
        top, _, sub = error.field.partition(".")
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
_SCHEMA_IMMUTABLE = (
    "The schema cannot be changed once the connector is saved; "
    "duplicate the connector to get one with a different schema."
)
_DIRECTION_IMMUTABLE = "The direction cannot be changed; create a new connector instead."


def _unknown_key_errors(body: Mapping[str, Any], allowed: Sequence[str]) -> list[InputError]:
    unknown = f"Unknown or read-only field; accepted: {', '.join(allowed)}."
    fixed = {"schema": _SCHEMA_IMMUTABLE, "direction": _DIRECTION_IMMUTABLE}
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


# --- documentation ------------------------------------------------------------------------------

_DESTINATION_EXAMPLE = {
    "id": "6f1c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f",
    "name": "CRM contacts",
    "direction": "destination",
    "schema": [
        {"name": "email", "type": "string", "nullable": False},
        {"name": "signed_up", "type": "datetime", "nullable": True},
    ],
    "destination": {
        "url": "https://api.example.com:8824/v2/notify",
        "method": "POST",
        "headers": [{"name": "Authorization", "value": "••••9f3a"}],
        "write_mode": "batch",
        "batch_size": 1000,
        "split_failed_batches": True,
        "timeout_seconds": 30,
    },
    "source": None,
    "created_at": "2025-01-15T09:30:00Z",
    "updated_at": "2025-01-15T09:30:00Z",
}
_SOURCE_EXAMPLE = {
    "id": "0d9e8f7a-6b5c-4d3e-9f2a-1b0c9d8e7f6a",
    "name": "Shop orders",
    "direction": "source",
    "schema": [
        {"name": "order_id", "type": "integer", "nullable": False},
        {"name": "total", "type": "number", "nullable": False},
    ],
    "destination": None,
    "source": {
        "state": "awaiting_samples",
        "sample_count": 0,
        "samples_required": 50,
        "ingest_url": "https://osmos.example.com/ingest/osm_Zx3...k9Q/",
    },
    "created_at": "2025-01-15T09:30:00Z",
    "updated_at": "2025-01-15T09:30:00Z",
}
_SOURCE_EXAMPLE_NO_URL = {
    **_SOURCE_EXAMPLE,
    "source": {"state": "active", "sample_count": 1250, "samples_required": 50},
}
_ERROR_400 = OpenApiResponse(
    response=inline_serializer(
        "ConnectorValidationError",
        {
            "detail": serializers.CharField(),
            "name": serializers.ListField(child=serializers.CharField(), required=False),
            "schema": serializers.ListField(child=serializers.DictField(), required=False),
            "destination": serializers.DictField(required=False),
        },
    ),
    description="Field-keyed validation errors; `schema` and `destination.headers` list "
    "`{index, field, message}` objects. Nothing was written.",
    examples=[
        OpenApiExample(
            "Invalid input",
            status_codes=[400],
            value={
                "detail": "Invalid input; see the errors by field.",
                "name": ["A connector named “CRM contacts” already exists in this organization."],
                "schema": [
                    {"index": 1, "field": "type", "message": "type must be one of string, ..."}
                ],
                "destination": {
                    "url": ["localhost resolves to 127.0.0.1, a loopback address."],
                    "headers": [
                        {
                            "index": 0,
                            "field": "value",
                            "message": "A header value is printable Latin-1 text without "
                            "line breaks.",
                        }
                    ],
                },
            },
        )
    ],
)
_DETAIL = inline_serializer("Detail", {"detail": serializers.CharField()})
_NOT_FOUND = OpenApiResponse(_DETAIL, description="No such connector in your organization.")
_FORBIDDEN = OpenApiResponse(_DETAIL, description="Members may only read; owners/admins write.")
_ID = OpenApiParameter(
    "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The connector's id."
)
_EXAMPLES_CONNECTOR = [
    OpenApiExample("A destination", value=_DESTINATION_EXAMPLE, response_only=True),
    OpenApiExample("A source", value=_SOURCE_EXAMPLE_NO_URL, response_only=True),
]


# --- the viewset --------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List connectors",
        parameters=[
            OpenApiParameter("direction", enum=Direction.values, description="Only this one."),
            OpenApiParameter("search", description="Case-insensitive part of the name."),
        ],
        responses={200: ConnectorSerializer(many=True)},
        examples=_EXAMPLES_CONNECTOR,
    ),
    retrieve=extend_schema(
        summary="Get a connector",
        parameters=[_ID],
        responses={200: ConnectorSerializer, 404: _NOT_FOUND},
        examples=_EXAMPLES_CONNECTOR,
    ),
)
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

    @extend_schema(
        summary="Create a connector",
        description="A destination needs `destination` settings; a source gets its ingest URL, "
        "shown in this response only. The schema can never be changed afterwards.",
        request=ConnectorCreateSerializer,
        responses={201: ConnectorSerializer, 400: _ERROR_400, 403: _FORBIDDEN},
        examples=[
            OpenApiExample(
                "Create a destination",
                request_only=True,
                value={
                    "name": "CRM contacts",
                    "direction": "destination",
                    "schema": _DESTINATION_EXAMPLE["schema"],
                    "destination": {
                        "url": "https://api.example.com:8824/v2/notify",
                        "headers": [{"name": "Authorization", "value": "Bearer s3cr3t-9f3a"}],
                        "batch_size": 1000,
                        "split_failed_batches": True,
                    },
                },
            ),
            OpenApiExample(
                "Create a source",
                request_only=True,
                value={
                    "name": "Shop orders",
                    "direction": "source",
                    "schema": _SOURCE_EXAMPLE["schema"],
                },
            ),
            OpenApiExample("Created destination", value=_DESTINATION_EXAMPLE, response_only=True),
            OpenApiExample("Created source", value=_SOURCE_EXAMPLE, response_only=True),
        ],
    )
    def create(self, request):
        try:
            body = _json_object(request.data)
            _raise_errors(_unknown_key_errors(body, ("name", "direction", "schema", "destination")))
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

    @extend_schema(
        summary="Edit a connector",
        parameters=[_ID],
        description="Name and destination settings only. A `schema` or `direction` key is "
        "refused (400): to change a schema, duplicate the connector.",
        request=ConnectorPatchSerializer,
        responses={200: ConnectorSerializer, 400: _ERROR_400, 403: _FORBIDDEN, 404: _NOT_FOUND},
        examples=[
            OpenApiExample(
                "Rename and change the batch size, keeping the stored header",
                request_only=True,
                value={
                    "name": "CRM contacts (v2)",
                    "destination": {
                        "batch_size": 500,
                        "headers": [{"name": "Authorization", "value": "••••9f3a"}],
                    },
                },
            ),
            OpenApiExample("Edited", value=_DESTINATION_EXAMPLE, response_only=True),
            OpenApiExample(
                "A schema in the request",
                status_codes=[400],
                response_only=True,
                value={
                    "detail": _SCHEMA_IMMUTABLE,
                    "schema": [{"index": None, "field": None, "message": _SCHEMA_IMMUTABLE}],
                },
            ),
        ],
    )
    def partial_update(self, request, pk=None):
        connector = self.get_object()
        try:
            body = _json_object(request.data)
            _raise_errors(_unknown_key_errors(body, ("name", "destination")))
            connector_update(
                connector=connector,
                name=_present_or_invalid(body, "name"),
                destination=_present_or_invalid(body, "destination"),
            )
        except ConnectorError as exc:
            return errors_response(exc.errors)
        return self._render(connector)

    @extend_schema(
        summary="Delete a connector",
        parameters=[_ID],
        description="Deletes its schema, settings and stored records. Refused (409) while a "
        "pipeline uses it; the pipelines are named.",
        request=None,
        responses={
            204: None,
            403: _FORBIDDEN,
            404: _NOT_FOUND,
            409: OpenApiResponse(
                inline_serializer(
                    "ConnectorInUse",
                    {"detail": serializers.CharField(), "pipelines": serializers.ListField()},
                ),
                examples=[
                    OpenApiExample(
                        "Used by a pipeline",
                        status_codes=[409],
                        value={
                            "detail": "This connector is used by the pipeline Nightly CRM sync; "
                            "delete or change it first.",
                            "pipelines": ["Nightly CRM sync"],
                        },
                    )
                ],
            ),
        },
    )
    def destroy(self, request, pk=None):
        try:
            connector_delete(connector=self.get_object())
        except ConnectorInUse as exc:
            return json_error(str(exc), status.HTTP_409_CONFLICT, pipelines=exc.pipeline_names)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Duplicate a connector",
        parameters=[_ID],
        description="Copies schema and settings under a new name. A duplicated destination "
        "keeps its headers; a duplicated source gets a new ingest URL (in this response only), "
        "state `awaiting_samples` and no records.",
        request=DuplicateSerializer,
        responses={201: ConnectorSerializer, 400: _ERROR_400, 403: _FORBIDDEN, 404: _NOT_FOUND},
        examples=[
            OpenApiExample("New name", value={"name": "Shop orders (copy)"}, request_only=True),
            OpenApiExample(
                "Duplicated source",
                value={**_SOURCE_EXAMPLE, "name": "Shop orders (copy)"},
                response_only=True,
            ),
        ],
    )
    @action(detail=True, methods=["post"])
    def duplicate(self, request, pk=None):
        connector = self.get_object()
        try:
            body = _json_object(request.data)
            _raise_errors(_unknown_key_errors(body, ("name",)))
            result = connector_duplicate(connector=connector, name=body.get("name"))
        except ConnectorError as exc:
            return errors_response(exc.errors)
        return self._render_issued(result, code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Rotate a source's ingest URL",
        parameters=[_ID],
        description="Issues a new ingest token; the old URL stops working at once. The new "
        "`source.ingest_url` is shown in this response only. 400 for a destination.",
        request=None,
        responses={200: ConnectorSerializer, 400: _ERROR_400, 403: _FORBIDDEN, 404: _NOT_FOUND},
        examples=[OpenApiExample("Rotated", value=_SOURCE_EXAMPLE, response_only=True)],
    )
    @action(detail=True, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request, pk=None):
        try:
            result = source_rotate_token(connector=self.get_object())
        except ConnectorError as exc:
            return errors_response(exc.errors)
        return self._render_issued(result, code=status.HTTP_200_OK)


def _raise_errors(errors: list[InputError]) -> None:
    if errors:
        raise ConnectorError(errors)
