"""The connector JSON of SPEC §6, as the API renders it and the OpenAPI schema shows it.

Values are validated by ``connectors.validation`` through the services (the API, the admin
and the pages share one set of rules and messages); every limit, choice and default named
here is read from there, so the documentation cannot drift from the rules.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from connectors.credentials import MAX_GRACE_HOURS, verification_view
from connectors.health import health_of
from connectors.models import (
    DEFAULT_VERIFICATION_HEADER,
    MAX_BATCH_SIZE,
    MAX_CONCURRENCY,
    MAX_RATE_LIMIT_PER_SECOND,
    MIN_RATE_LIMIT_PER_SECOND,
    Connector,
    Direction,
    HealthState,
    HttpMethod,
    ResponseFormat,
    VerificationScheme,
    WriteMode,
)
from connectors.schema import FIELD_TYPES
from connectors.schema import MAX_NAME_LENGTH as MAX_FIELD_NAME_LENGTH
from connectors.selectors import ingest_url
from connectors.validation import (
    DESTINATION_DEFAULTS,
    DESTINATION_KEYS,
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_HEADERS,
    MAX_NAME_LENGTH,
    MAX_TIMEOUT_SECONDS,
    destination_shown,
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


class SigningSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(
        help_text="Sign every request as Standard Webhooks (webhook-id, webhook-timestamp, "
        "webhook-signature)."
    )


class SigningReadSerializer(SigningSerializer):
    secret = serializers.CharField(
        required=False,
        help_text="The whsec_ secret: only in the response that enables signing, rotates the "
        "secret or moves the URL to another host.",
    )
    previous_secret_expires_at = serializers.DateTimeField(
        required=False,
        help_text="After a rotation, for 24 hours: until when the previous secret signs too.",
    )


class VerificationSerializer(serializers.Serializer):
    scheme = serializers.ChoiceField(choices=VerificationScheme.values)
    header = serializers.CharField(
        required=False,
        help_text="hmac_sha256 only: the request header holding the signature "
        f"(default {DEFAULT_VERIFICATION_HEADER}).",
    )
    secret = serializers.CharField(
        required=False,
        help_text="Write (hmac_sha256 only): your own secret, 16-512 characters; without it one "
        "is generated. Read: the generated secret, only in the response that issues it.",
    )


class SourceWriteSerializer(serializers.Serializer):
    verification = VerificationSerializer(required=False)


class DestinationHealthSerializer(serializers.Serializer):
    """Read-only (SPEC §5.2): whether the destination answers; see docs/delivery.md."""

    state = serializers.ChoiceField(choices=HealthState.values)
    since = serializers.DateTimeField()
    last_error = serializers.CharField(allow_blank=True)
    next_probe_at = serializers.DateTimeField(
        allow_null=True, help_text="While failing: when the next attempt goes."
    )


class DestinationSerializer(serializers.Serializer):
    url = serializers.CharField(
        help_text="Absolute http(s) URL, port allowed; single mode: {{field}} placeholders in "
        "the path and query values (see body_template)."
    )
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
        min_value=1,
        max_value=MAX_TIMEOUT_SECONDS,
        default=DESTINATION_DEFAULTS["timeout_seconds"],
        help_text="Bounds the whole request: connect, send and the complete response.",
    )
    signing = SigningSerializer(required=False)
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
        default=DESTINATION_DEFAULTS["max_concurrency"],
        help_text="The most requests in flight to this destination at once, across all runs, "
        "workers and hosts.",
    )
    response_format = serializers.ChoiceField(
        choices=ResponseFormat.values,
        default=DESTINATION_DEFAULTS["response_format"],
        help_text="`none`: any 2xx delivers every record of the request. `per_record`: a "
        'body `{"rejected": [{"index", "reason"}]}` fails those records (docs/delivery.md).',
    )
    body_template = serializers.JSONField(
        allow_null=True,
        default=None,
        help_text="null: the bare array (batch) or object (single). Else a JSON value (at most "
        '16 KB) holding the string "{{records}}" (batch) or "{{record}}" (single) exactly once, '
        'where the records go, e.g. {"events": "{{records}}", "source": "osmos"}. Never '
        "string-interpolated. The url may hold {{field}} placeholders in its path and query "
        "values (single mode; non-nullable string or integer fields), each value "
        "percent-encoded as one segment or value (docs/delivery.md).",
    )
    health = DestinationHealthSerializer(read_only=True, required=False)


class DestinationReadSerializer(DestinationSerializer):
    """The destination as answered: ``signing`` may hold the secret shown once."""

    signing = SigningReadSerializer()


class SourceSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["awaiting_samples", "ready", "active"])
    sample_count = serializers.IntegerField()
    samples_required = serializers.IntegerField()
    ingest_url = serializers.URLField(
        required=False,
        help_text="Only in the responses that create it: create, duplicate, rotate-token.",
    )
    previous_url_expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="After a rotation with grace_hours, while it lasts: until when the previous "
        "URL works.",
    )
    verification = VerificationSerializer()


class ConnectorSerializer(serializers.Serializer):
    """A connector as SPEC §6 shows it. Header values are masked; the token is never shown."""

    id = serializers.UUIDField(read_only=True)
    name = serializers.CharField(max_length=MAX_NAME_LENGTH)
    direction = serializers.ChoiceField(choices=Direction.values)
    schema = SchemaFieldSerializer(many=True)
    destination = DestinationReadSerializer(allow_null=True)
    source = SourceSerializer(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    warnings = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Only in the responses of writes: what was saved but is worth saying, e.g. "
        "a destination host that does not resolve today (SPEC §3.2).",
    )

    def to_representation(self, connector: Connector) -> dict[str, Any]:
        data = self._fields_of(connector)
        issued = self.context.get("issued")
        if issued is not None:
            data["warnings"] = list(issued.warnings)
        return data

    def _fields_of(self, connector: Connector) -> dict[str, Any]:
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

    def _issued(self, name: str) -> str | None:
        issued = self.context.get("issued")
        return getattr(issued, name, None) if issued is not None else None

    def _destination(self, connector: Connector) -> dict[str, Any]:
        settings_ = connector.destination
        signing: dict[str, Any] = {"enabled": settings_.signing_enabled}
        if settings_.signing_previous_expires_at and settings_.signing_previous_secret_encrypted:
            signing["previous_secret_expires_at"] = serializers.DateTimeField().to_representation(
                settings_.signing_previous_expires_at
            )
        if self._issued("signing_secret"):
            signing["secret"] = self._issued("signing_secret")
        shown = destination_shown(settings_)
        return {
            **{key: signing if key == "signing" else shown[key] for key in DESTINATION_KEYS},
            "health": DestinationHealthSerializer(health_of(connector)).data,
        }

    def _source(self, connector: Connector) -> dict[str, Any]:
        source = connector.source
        data = {
            "state": source.state,
            "sample_count": source.record_count,
            "samples_required": settings.INGEST_SAMPLES_REQUIRED,
        }
        token = self._issued("ingest_token")
        if token:
            data["ingest_url"] = ingest_url(token=token, request=self.context.get("request"))
        expires = source.previous_token_expires_at
        if expires and expires > timezone.now():
            data["previous_url_expires_at"] = serializers.DateTimeField().to_representation(expires)
        data["verification"] = verification_view(source)
        if self._issued("verification_secret"):
            data["verification"]["secret"] = self._issued("verification_secret")
        return data


class RotateTokenSerializer(serializers.Serializer):
    grace_hours = serializers.IntegerField(
        min_value=0,
        max_value=MAX_GRACE_HOURS,
        required=False,
        help_text="How long the current URL keeps working (default 0: it stops at once).",
    )
