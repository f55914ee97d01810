"""Sending a notification out of the product: e-mail to owners and admins."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.core.mail import send_mail

from osmos.notifications.models import Notification
from osmos.notifications.services import email_recipients

logger = logging.getLogger(__name__)


def notification_fan_out(*, notification_id: uuid.UUID) -> None:
    """E-mail the notification (once: a notification already e-mailed is skipped)."""
    notification = (
        Notification.objects.select_related("organization").filter(pk=notification_id).first()
    )
    if notification is None:
        return
    recipients = email_recipients(organization_id=notification.organization_id)
    if not recipients:
        return
    organization = notification.organization
    link = (
        f"{settings.PUBLIC_BASE_URL.rstrip('/')}/notifications/" if settings.PUBLIC_BASE_URL else ""
    )
    body = f"{notification.message}\n\nOrganization: {organization.name}\n"
    if link:
        body += f"All notifications: {link}\n"
    body += "\nYou receive this as an owner or admin; opt out on the notifications page.\n"
    # One message per person: addresses of other people stay private.
    for address in recipients:
        send_mail(
            subject=f"[osmos] {organization.name}: {notification.get_event_display()}",
            message=body,
            from_email=None,
            recipient_list=[address],
        )
    logger.info("notification %s e-mailed to %d people", notification_id, len(recipients))
