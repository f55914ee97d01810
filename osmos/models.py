"""Models of the project-wide ``osmos`` app: the API's idempotency keys (``osmos.idempotency``)."""

from __future__ import annotations

from django.db import models

from osmos.tenancy.models import TenantModel

IDEMPOTENCY_KEY_MAX_LENGTH = 255


class ApiIdempotencyKey(TenantModel):
    """An ``Idempotency-Key`` of an API ``POST``: claimed while the request runs
    (``response_status`` null), then the first answer, replayed for 24 hours.

    Keys are scoped to the organization and the caller (``token:<id>`` or ``user:<id>``);
    ``fingerprint`` (SHA-256 of method, path and body) tells a retry from another request.
    """

    caller = models.CharField(max_length=64)
    key = models.CharField(max_length=IDEMPOTENCY_KEY_MAX_LENGTH)
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_content_type = models.CharField(max_length=100, blank=True, default="")
    response_body = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "caller", "key"], name="uniq_api_idempotency_key"
            )
        ]
        indexes = [models.Index(fields=["created_at"], name="api_idempotency_created")]

    def __str__(self) -> str:
        return f"idempotency key {self.key!r} of {self.caller}"
