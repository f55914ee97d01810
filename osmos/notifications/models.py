"""Notifications (SPEC §5.5): what a person should know without watching the pages.

An ``Incident`` is one episode of trouble with one subject (a pipeline whose runs fail, a
destination that is failing or paused, a source rejecting requests). It opens once and
closes once, whatever happens in between, so a destination that is down for hours gives one
notification when it starts failing and one when it recovers, not one per run or per retry.
A partial unique index keeps at most one open incident per key, also when two workers
notice the same trouble at once.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from osmos.tenancy.models import Organization, TenantModel


class Event(models.TextChoices):
    RUN_FAILED = "run.failed", "A run failed"
    RUN_PARTIALLY_FAILED = "run.partially_failed", "A run partially failed"
    DESTINATION_FAILING = "destination.failing", "A destination is failing"
    DESTINATION_PAUSED = "destination.paused", "A destination was paused"
    DESTINATION_HEALTHY = "destination.healthy", "A destination is healthy again"
    SOURCE_REJECTING = "source.rejecting", "A source is rejecting requests"


class SubjectType(models.TextChoices):
    RUN = "run"
    CONNECTOR = "connector"


class Incident(TenantModel):
    key = models.CharField(max_length=200)
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "key"],
                condition=models.Q(closed_at__isnull=True),
                name="uniq_open_incident",
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} ({'open' if self.closed_at is None else 'closed'})"


class Notification(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.CharField(max_length=32, choices=Event.choices)
    subject_type = models.CharField(max_length=16, choices=SubjectType.choices)
    subject_id = models.UUIDField()
    message = models.TextField()
    incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="notification_org")]

    def __str__(self) -> str:
        return f"{self.event}: {self.message[:60]}"

    @property
    def read(self) -> bool:
        return self.read_at is not None


class EmailOptOut(models.Model):
    """A person who does not want notification e-mail from one organization."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="uniq_email_opt_out")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} opted out of e-mail from {self.organization_id}"


class NotificationWebhook(TenantModel):
    """The organization's notification webhook (SPEC §5.5): every notification is POSTed to
    ``url``, signed as Standard Webhooks with its own secret (encrypted; the previous one
    stays live for a day after a rotation). The outcome of the last attempt is kept for the
    settings page. At most one per organization."""

    url = models.TextField()
    secret_encrypted = models.TextField()
    previous_secret_encrypted = models.TextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="uniq_notification_webhook")
        ]

    def __str__(self) -> str:
        return f"notification webhook of {self.organization_id}"

    @property
    def failing(self) -> bool:
        return bool(self.last_error)
