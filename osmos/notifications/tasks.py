"""The notification actors: the e-mail fan-out, and the organization's webhook."""

from __future__ import annotations

import uuid

import dramatiq
from django.conf import settings

from osmos.notifications import delivery, webhook


@dramatiq.actor(max_retries=3, min_backoff=5_000)
def fan_out_notification(notification_id: str) -> None:
    delivery.notification_fan_out(notification_id=uuid.UUID(notification_id))


@dramatiq.actor(max_retries=0)
def deliver_notification_webhook(notification_id: str, attempt: int = 1) -> None:
    """One attempt; a failed one enqueues the next after the step of
    settings.NOTIFICATION_WEBHOOK_RETRY_SCHEDULE (a delayed message: no worker waits)."""
    if webhook.webhook_send(notification_id=uuid.UUID(notification_id)):
        return
    schedule = settings.NOTIFICATION_WEBHOOK_RETRY_SCHEDULE
    if attempt > len(schedule):
        return  # given up; the last error stays on the settings page
    deliver_notification_webhook.send_with_options(
        args=(notification_id, attempt + 1), delay=int(schedule[attempt - 1] * 1000)
    )
