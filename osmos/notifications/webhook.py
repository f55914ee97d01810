"""The organization notification webhook (SPEC §5.5): every notification, POSTed and signed.

- **Settings** (owners and admins): ``webhook_set`` (the URL; a new webhook gets its
  ``whsec_`` secret, shown once), ``webhook_rotate_secret`` (a new secret; the previous one
  stays live for ``ROTATION_GRACE``, both signatures sent meanwhile), ``webhook_delete``.
- **Sending** (``webhook_send``, from the ``deliver_notification_webhook`` actor after the
  notification's commit): one POST of the notification's JSON through the outbound client
  (address guard, whole-request deadline settings.NOTIFICATION_WEBHOOK_TIMEOUT_SECONDS),
  signed as Standard Webhooks (``webhook-id`` = ``osmos-notification-<id>``, the same for
  every attempt, so a receiver can drop repeats). A failure is retried after each step of
  settings.NOTIFICATION_WEBHOOK_RETRY_SCHEDULE; the last outcome (status, error, time) is
  kept on the webhook row for the settings page.

The notification itself never waits for the webhook nor fails with it: it is stored and
committed first, and the actor is enqueued after the commit (an enqueue failure is logged).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from osmos import crypto
from osmos.errors import InputError, InvalidInput
from osmos.notifications.models import Notification, NotificationWebhook
from osmos.outbound.client import DeliveryError, OutboundSession
from osmos.outbound.signing import new_secret
from osmos.outbound.urlguard import UnsafeURL, parse_destination_url

logger = logging.getLogger(__name__)

ROTATION_GRACE = timedelta(hours=24)
ERROR_MAX_CHARS = 500


# --- settings ------------------------------------------------------------------------------------


def webhook_get(*, organization) -> NotificationWebhook | None:
    return NotificationWebhook.objects.for_organization(organization).first()


def webhook_set(*, organization, url: str) -> tuple[NotificationWebhook, str | None]:
    """Set the webhook's URL; ``(webhook, secret)`` where ``secret`` is the new signing
    secret when the webhook was created (shown this once), else None."""
    url = (url or "").strip()
    if not url:
        raise InvalidInput([InputError("url", "Give the URL notifications are sent to.")])
    try:
        parse_destination_url(url)
    except UnsafeURL as exc:
        raise InvalidInput([InputError("url", str(exc))]) from None
    with transaction.atomic():
        webhook = (
            NotificationWebhook.objects.for_organization(organization).select_for_update().first()
        )
        if webhook is not None:
            if webhook.url != url:
                webhook.url = url
                webhook.last_error, webhook.last_status = "", None
                webhook.save(update_fields=["url", "last_error", "last_status", "updated_at"])
            return webhook, None
        secret = new_secret()
        webhook = NotificationWebhook.objects.create(
            organization=organization, url=url, secret_encrypted=crypto.encrypt(secret)
        )
        return webhook, secret


def webhook_rotate_secret(*, organization) -> str | None:
    """A new signing secret (returned, shown once); None when there is no webhook."""
    with transaction.atomic():
        webhook = (
            NotificationWebhook.objects.for_organization(organization).select_for_update().first()
        )
        if webhook is None:
            return None
        secret = new_secret()
        webhook.previous_secret_encrypted = webhook.secret_encrypted
        webhook.previous_secret_expires_at = timezone.now() + ROTATION_GRACE
        webhook.secret_encrypted = crypto.encrypt(secret)
        webhook.save(
            update_fields=[
                "previous_secret_encrypted",
                "previous_secret_expires_at",
                "secret_encrypted",
                "updated_at",
            ]
        )
        return secret


def webhook_delete(*, organization) -> bool:
    deleted, _ = NotificationWebhook.objects.for_organization(organization).delete()
    return bool(deleted)


def webhook_secrets(webhook: NotificationWebhook, *, now) -> list[str]:
    """The live signing secrets, newest first."""
    live = [crypto.decrypt(webhook.secret_encrypted)]
    expires = webhook.previous_secret_expires_at
    if webhook.previous_secret_encrypted and expires is not None and now < expires:
        live.append(crypto.decrypt(webhook.previous_secret_encrypted))
    return live


# --- sending -------------------------------------------------------------------------------------


def webhook_enqueue(notification: Notification) -> None:
    """After the notification's commit: hand it to the actor when the organization has a
    webhook. Never raises: a broker outage must not fail what notified."""
    try:
        if not NotificationWebhook.objects.filter(
            organization_id=notification.organization_id
        ).exists():
            return
        from osmos.notifications.tasks import deliver_notification_webhook

        deliver_notification_webhook.send(str(notification.pk), 1)
    except Exception:  # the notification stands whatever happens here
        logger.exception("could not enqueue the webhook of notification %s", notification.pk)


def webhook_payload(notification: Notification) -> bytes:
    """The body: the notification's JSON (SPEC §5.5) and its organization's id."""
    return orjson.dumps(
        {
            "id": str(notification.pk),
            "event": notification.event,
            "subject": {"type": notification.subject_type, "id": str(notification.subject_id)},
            "message": notification.message,
            "created_at": notification.created_at.isoformat(),
            "organization": str(notification.organization_id),
        }
    )


def webhook_idempotency_key(notification_id: uuid.UUID | str) -> str:
    return f"osmos-notification-{notification_id}"


def webhook_send(*, notification_id: uuid.UUID) -> bool:
    """POST the notification to its organization's webhook once; whether it is done
    (delivered, or nothing to send) rather than worth another attempt. The outcome is
    written on the webhook row."""
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is None:
        return True
    webhook = NotificationWebhook.objects.filter(
        organization_id=notification.organization_id
    ).first()
    if webhook is None:
        return True
    now = timezone.now()
    status, error = None, ""
    try:
        with OutboundSession(pool_size=1) as client:
            response = client.send(
                "POST",
                webhook.url,
                headers=[],
                body=webhook_payload(notification),
                idempotency_key=webhook_idempotency_key(notification.pk),
                timeout=settings.NOTIFICATION_WEBHOOK_TIMEOUT_SECONDS,
                max_body_bytes=4096,
                signing_secrets=webhook_secrets(webhook, now=now),
            )
        status = response.status
    except DeliveryError as exc:
        status, error = exc.status, exc.message[:ERROR_MAX_CHARS]
    changes = {"last_attempt_at": timezone.now(), "last_status": status, "last_error": error}
    if not error:
        changes["last_success_at"] = changes["last_attempt_at"]
    NotificationWebhook.objects.filter(pk=webhook.pk).update(**changes)
    if error:
        logger.warning("notification webhook failed for %s: %s", notification_id, error)
    return not error
