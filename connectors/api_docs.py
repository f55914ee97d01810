"""OpenAPI documentation of the connectors API: examples and the per-endpoint schemas.

The request bodies below describe what the services accept; they validate nothing (the API
passes the JSON to the services, which apply ``connectors.validation``). They are built from
the response serializers, whose limits, choices and defaults are read from the rules.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers

from connectors.models import Direction
from connectors.serializers import (
    ConnectorSerializer,
    DestinationSerializer,
    RotateTokenSerializer,
    SchemaFieldSerializer,
    SourceWriteSerializer,
)
from connectors.validation import MAX_NAME_LENGTH, SCHEMA_IMMUTABLE_MESSAGE
from osmos.api import problem


class ConnectorCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME_LENGTH)
    direction = serializers.ChoiceField(choices=Direction.values)
    schema = SchemaFieldSerializer(many=True, help_text="Immutable once created.")
    destination = DestinationSerializer(
        required=False, allow_null=True, help_text="Required for a destination; null for a source."
    )
    source = SourceWriteSerializer(required=False, help_text="A source only: verification.")


class ConnectorPatchSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME_LENGTH, required=False)
    # partial: only the settings to change (``headers`` replaces the whole list).
    destination = DestinationSerializer(required=False, partial=True)
    source = SourceWriteSerializer(required=False)


class DuplicateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME_LENGTH, help_text="The new connector's name.")
    schema = SchemaFieldSerializer(
        many=True,
        required=False,
        help_text="The copy's schema (same rules as create); omitted = the original's. "
        "Duplicating is how a schema changes.",
    )


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
        "rate_limit_per_second": 50.0,
        "max_concurrency": 8,
        "response_format": "per_record",
        "health": {
            "state": "healthy",
            "since": "2025-01-15T09:30:00Z",
            "last_error": "",
            "next_probe_at": None,
        },
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
    "`{index, field, message}` objects; an error about the destination settings as a whole is "
    "in `destination.non_field_errors`. Nothing was written.",
    examples=[
        OpenApiExample(
            "Invalid input",
            status_codes=[400],
            value=problem(
                400,
                "Invalid input; see the errors by field.",
                name=["A connector named “CRM contacts” already exists in this organization."],
                schema=[
                    {"index": 1, "field": "type", "message": "type must be one of string, ..."}
                ],
                destination={
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
            ),
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

list_and_retrieve_docs = extend_schema_view(
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

create_docs = extend_schema(
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

partial_update_docs = extend_schema(
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
            value=problem(
                400,
                SCHEMA_IMMUTABLE_MESSAGE,
                schema=[{"index": None, "field": None, "message": SCHEMA_IMMUTABLE_MESSAGE}],
            ),
        ),
    ],
)

destroy_docs = extend_schema(
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
                    value=problem(
                        409,
                        "This connector is used by the pipeline Nightly CRM sync; "
                        "delete or change it first.",
                        pipelines=["Nightly CRM sync"],
                    ),
                )
            ],
        ),
    },
)

duplicate_docs = extend_schema(
    summary="Duplicate a connector",
    parameters=[_ID],
    description="Copies schema and settings under a new name; `schema`, when given, is the "
    "copy's new schema (checked as on create): duplicating is how a schema changes. A "
    "duplicated destination keeps its headers; a duplicated source gets a new ingest URL (in "
    "this response only), state `awaiting_samples` and no records, so it needs its samples "
    "and to be saved before pipelines can use it. Then PATCH each pipeline's `source` or "
    "`destination` to the copy.",
    request=DuplicateSerializer,
    responses={201: ConnectorSerializer, 400: _ERROR_400, 403: _FORBIDDEN, 404: _NOT_FOUND},
    examples=[
        OpenApiExample("New name", value={"name": "Shop orders (copy)"}, request_only=True),
        OpenApiExample(
            "New name and a new schema",
            value={
                "name": "Shop orders v2",
                "schema": [
                    {"name": "id", "type": "integer", "nullable": False},
                    {"name": "email", "type": "string", "nullable": False},
                    {"name": "coupon", "type": "string", "nullable": True},
                ],
            },
            request_only=True,
        ),
        OpenApiExample(
            "Duplicated source",
            value={**_SOURCE_EXAMPLE, "name": "Shop orders (copy)"},
            response_only=True,
        ),
    ],
)

rotate_token_docs = extend_schema(
    summary="Rotate a source's ingest URL",
    parameters=[_ID],
    description="Issues a new ingest token. The old URL stops working at once, or after "
    "`grace_hours` (0-168; `source.previous_url_expires_at` says until when). The new "
    "`source.ingest_url` is shown in this response only. 400 for a destination.",
    request=RotateTokenSerializer,
    responses={200: ConnectorSerializer, 400: _ERROR_400, 403: _FORBIDDEN, 404: _NOT_FOUND},
    examples=[OpenApiExample("Rotated", value=_SOURCE_EXAMPLE, response_only=True)],
)


rotate_signing_secret_docs = extend_schema(
    summary="Rotate a destination's signing secret",
    parameters=[_ID],
    description="Issues a new `whsec_` signing secret, shown in this response only "
    "(`destination.signing.secret`). For 24 hours requests carry two signatures (new and "
    "previous), so receivers can switch without a gap. Owners, admins and tokens only. 400 for "
    "a source or a destination without signing enabled.",
    request=None,
    responses={200: ConnectorSerializer, 400: _ERROR_400, 403: _FORBIDDEN, 404: _NOT_FOUND},
)

resume_docs = extend_schema(
    summary="Resume a paused destination",
    parameters=[_ID],
    description="A destination that answered `410 Gone` is paused: nothing is sent to it "
    "until a person resumes it here (owners and admins). Its waiting runs then go on at once "
    "(SPEC §5.2, docs/delivery.md). 409 when it is not paused; 400 for a source.",
    request=None,
    responses={
        200: ConnectorSerializer,
        400: _ERROR_400,
        403: _FORBIDDEN,
        404: _NOT_FOUND,
        409: OpenApiResponse(_DETAIL, description="The destination is not paused."),
    },
    examples=[OpenApiExample("Resumed", value=_DESTINATION_EXAMPLE, response_only=True)],
)
