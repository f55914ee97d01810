"""Records received by source connectors, and the idempotency keys of ingest requests."""

from __future__ import annotations

from django.db import models

from connectors.models import Connector
from osmos.tenancy.models import Organization, TenantModel


class Record(TenantModel):
    """One stored record. ``sequence`` increases per connector in order of arrival.

    Rows are written only by ingest: ``ingest.storage`` (binary COPY on PostgreSQL, batched
    INSERTs on SQLite) and, for small requests on PostgreSQL, the single statement of
    ``group_commit``. They are deleted in SQL with their connector
    (``storage.records_delete``). ``data`` is ``jsonb``.
    """

    id = models.BigAutoField(primary_key=True)
    # Denormalized for tenant scoping: always the connector's organization. No database
    # constraint, because every constraint is a per-row trigger during COPY (measured: the
    # two foreign-key checks cost ~40% of the insert time) and the connector's foreign key
    # already guarantees the row belongs somewhere (and deleting the connector deletes its
    # records, see storage.records_delete).
    # No index either: every read goes through a connector (the (connector, sequence) index),
    # and maintaining an index on organization_id cost ~20% of the COPY time (measured).
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    # No index of its own: the unique (connector, sequence) index serves connector lookups.
    connector = models.ForeignKey(
        Connector, on_delete=models.CASCADE, related_name="records", db_index=False
    )
    sequence = models.PositiveBigIntegerField()
    received_at = models.DateTimeField()
    data = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connector", "sequence"], name="uniq_record_sequence")
        ]

    def __str__(self) -> str:
        return f"record {self.sequence} of {self.connector_id}"


class IdempotencyKey(TenantModel):
    """The answer given to the first successful request with this key, replayed for 24 hours.

    ``request_hash`` (SHA-256 of the decoded body) tells a genuine retry from a different
    request that reuses the key by mistake.
    """

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    created_at = models.DateTimeField()
    request_hash = models.CharField(max_length=64, default="", blank=True)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connector", "key"], name="uniq_idempotency_key")
        ]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"idempotency key {self.key!r} of {self.connector_id}"


class IngestRejection(TenantModel):
    """A refused ingest request, kept so the customer can see why (SPEC §4, the source
    debugger): the last settings.INGEST_REJECTIONS_KEPT per source, for RETENTION_DAYS."""

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.PositiveSmallIntegerField()
    detail = models.TextField()
    error_count = models.PositiveIntegerField(default=0)
    # The first errors as answered: [{"index", "field", "message"}, …].
    errors = models.JSONField(default=list)
    body_excerpt = models.TextField(blank=True, default="")
    client_address = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["connector", "-id"], name="rejection_connector")]

    def __str__(self) -> str:
        return f"{self.status} at {self.created_at:%Y-%m-%d %H:%M} for {self.connector_id}"
