"""Serializers of the connectors API: the connector JSON of SPEC §6, and the request bodies.

The request serializers document the API (OpenAPI); the values themselves are validated by
``connectors.validation`` through the services, so the API, the admin and the pages share
one set of rules and messages.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from connectors.health import health_of
from connectors.models import (
    DEFAULT_MAX_CONCURRENCY,
    MAX_BATCH_SIZE,
    MAX_CONCURRENCY,
    MAX_RATE_LIMIT_PER_SECOND,
    MIN_RATE_LIMIT_PER_SECOND,
    Connector,
    Direction,
    HealthState,
    HttpMethod,
    ResponseFormat,
    WriteMode,
)
from connectors.schema import FIELD_TYPES
from connectors.selectors import ingest_url


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


class DestinationHealthSerializer(serializers.Serializer):
    """Read-only (SPEC §5.2): whether the destination answers; see docs/delivery.md."""

    state = serializers.ChoiceField(choices=HealthState.values)
    since = serializers.DateTimeField()
    last_error = serializers.CharField(allow_blank=True)
    next_probe_at = serializers.DateTimeField(
        allow_null=True, help_text="While failing: when the next attempt goes."
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
    timeout_seconds = serializers.IntegerField(
        min_value=1,
        max_value=300,
        default=30,
        help_text="Bounds the whole request: connect, send and the complete response.",
    )
    rate_limit_per_second = serializers.FloatField(
        min_value=MIN_RATE_LIMIT_PER_SECOND,
        max_value=MAX_RATE_LIMIT_PER_SECOND,
        allow_null=True,
        default=None,
        help_text="The most requests per second to this destination, across all runs, "
        "workers and hosts; null = no limit.",
    )
    max_concurrency = serializers.IntegerField(
        min_value=1,
        max_value=MAX_CONCURRENCY,
        default=DEFAULT_MAX_CONCURRENCY,
        help_text="The most requests in flight to this destination at once, across all runs, "
        "workers and hosts.",
    )
    response_format = serializers.ChoiceField(
        choices=ResponseFormat.values,
        default=ResponseFormat.NONE,
        help_text="`none`: any 2xx delivers every record of the request. `per_record`: a "
        'body `{"rejected": [{"index", "reason"}]}` fails those records (docs/delivery.md).',
    )
    health = DestinationHealthSerializer(read_only=True, required=False)


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
            "rate_limit_per_second": settings_.rate_limit_per_second,
            "max_concurrency": settings_.max_concurrency,
            "response_format": settings_.response_format,
            "health": DestinationHealthSerializer(health_of(connector)).data,
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
