"""Records received by source connectors, and the idempotency keys of ingest requests."""

from __future__ import annotations

from django.db import models

from connectors.models import Connector
from osmos.tenancy.models import TenantModel


class Record(TenantModel):
    """One stored record. ``sequence`` increases per connector in order of arrival."""

    id = models.BigAutoField(primary_key=True)
    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="records")
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
    """The answer given to the first request with this key, replayed for 24 hours."""

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    created_at = models.DateTimeField()
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connector", "key"], name="uniq_idempotency_key")
        ]
        indexes = [models.Index(fields=["created_at"])]
