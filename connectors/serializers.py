"""The connector JSON of SPEC §6, as the API renders it and the OpenAPI schema shows it.

Values are validated by ``connectors.validation`` through the services (the API, the admin
and the pages share one set of rules and messages); every limit, choice and default named
here is read from there, so the documentation cannot drift from the rules.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from connectors.models import MAX_BATCH_SIZE, Connector, Direction, HttpMethod, WriteMode
from connectors.schema import FIELD_TYPES
from connectors.schema import MAX_NAME_LENGTH as MAX_FIELD_NAME_LENGTH
from connectors.selectors import ingest_url
from connectors.validation import (
    DESTINATION_DEFAULTS,
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_HEADERS,
    MAX_NAME_LENGTH,
    MAX_TIMEOUT_SECONDS,
)


class SchemaFieldSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_FIELD_NAME_LENGTH)
    type = serializers.ChoiceField(choices=FIELD_TYPES)
    nullable = serializers.BooleanField()


class HeaderSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_HEADER_NAME_LENGTH)
    value = serializers.CharField(
        max_length=MAX_HEADER_VALUE_LENGTH,
        help_text="Write: the plain value. Read: always masked (••••1234). Sending back the "
        "masked value of a stored header keeps the stored secret.",
    )


class DestinationSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="Absolute http(s) URL, port allowed.")
    method = serializers.ChoiceField(
        choices=HttpMethod.values, default=DESTINATION_DEFAULTS["method"]
    )
    headers = HeaderSerializer(many=True, required=False, max_length=MAX_HEADERS)
    write_mode = serializers.ChoiceField(
        choices=WriteMode.values, default=DESTINATION_DEFAULTS["write_mode"]
    )
    batch_size = serializers.IntegerField(
        min_value=1, max_value=MAX_BATCH_SIZE, default=DESTINATION_DEFAULTS["batch_size"]
    )
    split_failed_batches = serializers.BooleanField(
        default=DESTINATION_DEFAULTS["split_failed_batches"]
    )
    timeout_seconds = serializers.IntegerField(
        min_value=1, max_value=MAX_TIMEOUT_SECONDS, default=DESTINATION_DEFAULTS["timeout_seconds"]
    )


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
    name = serializers.CharField(max_length=MAX_NAME_LENGTH)
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
