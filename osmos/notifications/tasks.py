"""The notification fan-out actor: e-mail now, the organization's webhook once it is set."""

from __future__ import annotations

import uuid

import dramatiq

from osmos.notifications import delivery


@dramatiq.actor(max_retries=3, min_backoff=5_000)
def fan_out_notification(notification_id: str) -> None:
    delivery.notification_fan_out(notification_id=uuid.UUID(notification_id))
