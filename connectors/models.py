"""Connectors: a typed, immutable schema plus the settings of one direction.

A ``Connector`` row has exactly one of ``DestinationSettings`` / ``SourceSettings``
(by direction). ``SchemaField`` rows never change once the connector is saved: the model
refuses it, and on PostgreSQL a trigger refuses UPDATE/DELETE of them too (except through
deleting the connector).
"""

from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connections, models
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from osmos import crypto
from osmos.tenancy.models import TenantModel


class Direction(models.TextChoices):
    SOURCE = "source", "Source (call our API)"
    DESTINATION = "destination", "Destination (we call your API)"


class FieldType(models.TextChoices):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    JSON = "json"


class Connector(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    direction = models.CharField(max_length=12, choices=Direction.choices, editable=False)
    # The connector this one was duplicated from (SPEC §3.4): its page offers to move the
    # original's pipelines here. Null for an original, or once the original is deleted.
    duplicated_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="duplicates",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="uniq_connector_name")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_source(self) -> bool:
        return self.direction == Direction.SOURCE

    def field_specs(self) -> list[tuple[str, str, bool]]:
        """The schema as ``(name, type, nullable)`` in order (uses a prefetch if present)."""
        return [(f.name, f.type, f.nullable) for f in self.fields.all()]


class ImmutableSchemaError(Exception):
    """Raised on any attempt to change the schema of a saved connector."""

    message = "The schema of a saved connector cannot be changed; duplicate the connector."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.message)


class SchemaFieldQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableSchemaError()

    def delete(self):
        raise ImmutableSchemaError()


class SchemaField(models.Model):
    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="fields")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=255)
    type = models.CharField(max_length=10, choices=FieldType.choices)
    nullable = models.BooleanField(default=False)

    objects = SchemaFieldQuerySet.as_manager()

    class Meta:
        ordering = ["connector", "position"]
        constraints = [
            models.UniqueConstraint(fields=["connector", "position"], name="uniq_field_position"),
            models.UniqueConstraint(fields=["connector", "name"], name="uniq_field_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.type}{'?' if self.nullable else ''}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableSchemaError()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableSchemaError()


class HttpMethod(models.TextChoices):
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"


class WriteMode(models.TextChoices):
    BATCH = "batch", "Batch (a JSON array per request)"
    SINGLE = "single", "Single (one JSON object per request)"


class ResponseFormat(models.TextChoices):
    NONE = "none", "None (any 2xx delivers every record of the request)"
    PER_RECORD = "per_record", "Per record (the body may reject some records)"


MAX_BATCH_SIZE = 250_000
MIN_RATE_LIMIT_PER_SECOND = 0.1
MAX_RATE_LIMIT_PER_SECOND = 10_000
MAX_CONCURRENCY = 64
DEFAULT_MAX_CONCURRENCY = 8


class DestinationSettings(models.Model):
    """How we call the customer's API. Header values are stored encrypted."""

    connector = models.OneToOneField(
        Connector, on_delete=models.CASCADE, primary_key=True, related_name="destination"
    )
    url = models.CharField(max_length=2048)
    method = models.CharField(max_length=5, choices=HttpMethod.choices, default=HttpMethod.POST)
    # [{"name": "Authorization", "value": "<fernet token>"}, ...] in order.
    headers_encrypted = models.JSONField(default=list, blank=True)
    write_mode = models.CharField(max_length=6, choices=WriteMode.choices, default=WriteMode.BATCH)
    batch_size = models.PositiveIntegerField(
        default=MAX_BATCH_SIZE, validators=[MinValueValidator(1), MaxValueValidator(MAX_BATCH_SIZE)]
    )
    split_failed_batches = models.BooleanField(default=False)
    timeout_seconds = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(300)]
    )
    # --- request signing (SPEC §5.4; osmos/outbound/signing.py) --------------------------------
    # The secret signs while enabled; after a rotation the previous one signs too until
    # ``signing_previous_expires_at`` (24 h), so receivers can switch without a gap.
    signing_enabled = models.BooleanField(default=False)
    signing_secret_encrypted = models.TextField(blank=True, default="")
    signing_previous_secret_encrypted = models.TextField(blank=True, default="")
    signing_previous_expires_at = models.DateTimeField(null=True, blank=True)
    # SPEC §3.2/§5.2: the most requests per second (null: no limit) and in flight at once to
    # this destination, across runs, worker processes and hosts.
    rate_limit_per_second = models.FloatField(
        null=True,
        blank=True,
        validators=[
            MinValueValidator(MIN_RATE_LIMIT_PER_SECOND),
            MaxValueValidator(MAX_RATE_LIMIT_PER_SECOND),
        ],
    )
    max_concurrency = models.PositiveSmallIntegerField(
        default=DEFAULT_MAX_CONCURRENCY,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CONCURRENCY)],
    )
    response_format = models.CharField(
        max_length=10, choices=ResponseFormat.choices, default=ResponseFormat.NONE
    )
    # SPEC §3.2: the JSON envelope around the records (null: the bare array or object),
    # checked by osmos.outbound.shaping; placeholders in ``url`` are checked there too.
    body_template = models.JSONField(null=True, blank=True, default=None)

    class Meta:
        verbose_name_plural = "destination settings"

    def __str__(self) -> str:
        return f"{self.method} {self.url}"

    def set_headers(self, headers: list[tuple[str, str]]) -> None:
        self.headers_encrypted = [
            {"name": name, "value": crypto.encrypt(value)} for name, value in headers
        ]

    def decrypted_headers(self) -> list[tuple[str, str]]:
        """The headers to send. Only the delivery engine and ``set_headers`` callers use this."""
        return [(h["name"], crypto.decrypt(h["value"])) for h in self.headers_encrypted]

    def masked_headers(self) -> list[dict[str, str]]:
        return [
            {"name": name, "value": crypto.mask(value)} for name, value in self.decrypted_headers()
        ]

    # --- request signing (SPEC §5.4) ------------------------------------------------------------
    def signing_secrets(self, *, now) -> list[str]:
        """The ``whsec_`` secrets that sign a request sent at ``now``, newest first; [] when
        signing is off. Only the delivery engine and the signing services call this."""
        if not self.signing_enabled or not self.signing_secret_encrypted:
            return []
        live = [crypto.decrypt(self.signing_secret_encrypted)]
        expires = self.signing_previous_expires_at
        if self.signing_previous_secret_encrypted and expires is not None and now < expires:
            live.append(crypto.decrypt(self.signing_previous_secret_encrypted))
        return live


class HealthState(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    FAILING = "failing", "Failing"
    PAUSED = "paused", "Paused"


class DestinationHealth(models.Model):
    """Whether a destination answers (SPEC §5.2); written by the delivery engine only.

    A row of its own, not fields of ``DestinationSettings``: a settings form saved while a
    run records a failure must not write an old health back. No row means ``healthy``.
    ``streak_started_at`` is when the current run of transient failures began (null after a
    success); ``next_probe_at`` is when the next attempt may go to a failing destination
    (one at a time: the run that claims it moves it on).
    """

    connector = models.OneToOneField(
        Connector, on_delete=models.CASCADE, primary_key=True, related_name="health"
    )
    state = models.CharField(max_length=7, choices=HealthState.choices, default=HealthState.HEALTHY)
    since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    streak_started_at = models.DateTimeField(null=True, blank=True)
    next_probe_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "destination health"

    def __str__(self) -> str:
        return f"{self.connector_id}: {self.state}"


class SourceState(models.TextChoices):
    AWAITING_SAMPLES = "awaiting_samples", "Awaiting samples"
    READY = "ready", "Ready to save"
    ACTIVE = "active", "Active"


class VerificationScheme(models.TextChoices):
    NONE = "none", "None (the URL is the only credential)"
    STANDARD_WEBHOOKS = "standard_webhooks", "Standard Webhooks (webhook-signature)"
    HMAC_SHA256 = "hmac_sha256", "HMAC-SHA256 of the body in a header (GitHub/Shopify style)"


DEFAULT_VERIFICATION_HEADER = "X-Signature"


class SourceSettings(models.Model):
    """The ingest side of a source connector.

    ``last_sequence`` is the per-connector record counter: ingest locks this row, takes the
    next N numbers and inserts its records in one transaction, so sequences are handed out
    in commit order (see ingest/services.py for why that matters to pipeline cursors).
    """

    connector = models.OneToOneField(
        Connector, on_delete=models.CASCADE, primary_key=True, related_name="source"
    )
    token_lookup = models.CharField(max_length=16, db_index=True, editable=False)
    token_hash = models.CharField(max_length=64, editable=False)
    state = models.CharField(
        max_length=16, choices=SourceState.choices, default=SourceState.AWAITING_SAMPLES
    )
    record_count = models.PositiveBigIntegerField(default=0)
    last_sequence = models.PositiveBigIntegerField(default=0)
    token_rotated_at = models.DateTimeField(null=True, blank=True)

    # --- security (SPEC §4: rotation grace, sender verification) ---------------------------------
    # After a rotation with a grace period, the previous token still opens the ingest URL
    # until ``previous_token_expires_at``.
    previous_token_lookup = models.CharField(max_length=16, blank=True, default="", db_index=True)
    previous_token_hash = models.CharField(max_length=64, blank=True, default="")
    previous_token_expires_at = models.DateTimeField(null=True, blank=True)
    verification_scheme = models.CharField(
        max_length=20, choices=VerificationScheme.choices, default=VerificationScheme.NONE
    )
    verification_header = models.CharField(max_length=256, blank=True, default="")
    verification_secret_encrypted = models.TextField(blank=True, default="")

    class Meta:
        verbose_name_plural = "source settings"

    def __str__(self) -> str:
        return f"source {self.connector_id} ({self.state})"

    def verification_secret(self) -> str:
        """The plain sender-verification secret (the ingest path only)."""
        return crypto.decrypt(self.verification_secret_encrypted)


def allow_schema_delete(*, connector_id: uuid.UUID, using: str = "default") -> None:
    """Let the PostgreSQL trigger accept deleting this connector's schema rows.

    The trigger (migration 0002) refuses UPDATE/DELETE of schema rows, but a connector's own
    deletion must remove them, and Django deletes children before the parent, so the trigger
    cannot see that the parent goes too. This marks the connector in a transaction-local
    setting (``osmos.deleting_connectors``, comma-separated ids) that the trigger reads; it
    vanishes when the transaction ends. A no-op on other databases (they have no trigger).
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('osmos.deleting_connectors', concat_ws(',', "
            "nullif(current_setting('osmos.deleting_connectors', true), ''), %s), true)",
            [str(connector_id)],
        )


@receiver(pre_delete, sender=Connector)
def _connector_pre_delete(sender, instance: Connector, using: str, **kwargs) -> None:
    # Django sends pre_delete inside the deletion's transaction, before any row is deleted:
    # so every ORM path (the service, the admin, an organization's cascade) works with the
    # trigger, and only for the connectors actually being deleted.
    allow_schema_delete(connector_id=instance.pk, using=using)
