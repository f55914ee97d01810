"""The shared state of the destination gates (`osmos.outbound.gate`), on PostgreSQL.

Keyed by the destination's UUID without a foreign key: this package imports no app, and a
gate row of a deleted destination is harmless (a few dozen bytes).
"""

from __future__ import annotations

from django.db import models


class GateState(models.Model):
    """One destination's shared limits: the next free send time of its rate schedule, its
    pause, the pace asked by its RateLimit headers and its AIMD concurrency."""

    destination_id = models.UUIDField(primary_key=True)
    next_send_at = models.DateTimeField()
    paused_until = models.DateTimeField(null=True)
    paced_rate = models.FloatField(null=True)
    paced_until = models.DateTimeField(null=True)
    # The concurrency AIMD allows now; null = the destination's max_concurrency.
    concurrency = models.PositiveSmallIntegerField(null=True)
    decreased_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "outbound_gate_state"

    def __str__(self) -> str:
        return f"gate of {self.destination_id}"


class GateLease(models.Model):
    """Concurrency slots of one destination held by one process until `expires_at`."""

    destination_id = models.UUIDField()
    holder = models.CharField(max_length=120)
    slots = models.PositiveSmallIntegerField()
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "outbound_gate_lease"
        constraints = [
            models.UniqueConstraint(fields=["destination_id", "holder"], name="outbound_lease_once")
        ]

    def __str__(self) -> str:
        return f"{self.slots} slots of {self.destination_id} held by {self.holder}"
