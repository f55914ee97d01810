"""Opening and closing incidents, and telling people (SPEC §5.5).

``incident_open`` notifies only when it opens a new incident; ``incident_close`` tells the
caller whether one was open, so that a recovery is announced once (or not at all: a pipeline
whose runs succeed again needs no message). Both are safe to call from any worker at any
time, as often as the condition is seen. The e-mail fan-out runs in an actor after the commit.
"""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

from osmos.notifications.models import EmailOptOut, Incident, Notification
from osmos.notifications.webhook import webhook_enqueue
from osmos.tenancy.models import MANAGER_ROLES, Membership, Organization


def incident_open(
    *,
    organization_id: uuid.UUID,
    key: str,
    event: str,
    subject_type: str,
    subject_id: uuid.UUID,
    message: str,
) -> Notification | None:
    """Open the incident ``key`` and notify; None (nothing written) when it is open already."""
    with transaction.atomic():
        if Incident.objects.filter(
            organization_id=organization_id, key=key, closed_at__isnull=True
        ).exists():
            return None
        try:
            with transaction.atomic():
                incident = Incident.objects.create(organization_id=organization_id, key=key)
        except IntegrityError:  # opened by another worker a moment ago
            return None
        return notify(
            organization_id=organization_id,
            event=event,
            subject_type=subject_type,
            subject_id=subject_id,
            message=message,
            incident=incident,
        )


def incident_close(*, organization_id: uuid.UUID, key: str) -> Incident | None:
    """Close the open incident ``key``; the incident closed, or None when none was open.

    Closing says nothing by itself: the caller decides whether a recovery is worth a
    notification (``notify``), e.g. "healthy again" yes, "a run succeeded again" no.
    """
    with transaction.atomic():
        incident = (
            Incident.objects.select_for_update()
            .filter(organization_id=organization_id, key=key, closed_at__isnull=True)
            .first()
        )
        if incident is None:
            return None
        incident.closed_at = timezone.now()
        incident.save(update_fields=["closed_at"])
        return incident


def notify(
    *,
    organization_id: uuid.UUID,
    event: str,
    subject_type: str,
    subject_id: uuid.UUID,
    message: str,
    incident: Incident | None = None,
) -> Notification:
    """Store the notification and, after the commit, e-mail it (the fan-out actor)."""
    notification = Notification.objects.create(
        organization_id=organization_id,
        event=event,
        subject_type=subject_type,
        subject_id=subject_id,
        message=message,
        incident=incident,
    )
    transaction.on_commit(lambda: _enqueue_fanout(notification.pk))
    # The webhook never fails the notification: enqueued after the commit, errors logged.
    transaction.on_commit(lambda: webhook_enqueue(notification), robust=True)
    return notification


def _enqueue_fanout(notification_id: uuid.UUID) -> None:
    from osmos.notifications.tasks import fan_out_notification  # the actor module imports us

    fan_out_notification.send(str(notification_id))


def email_recipients(*, organization_id: uuid.UUID) -> list[str]:
    """Addresses of the organization's owners and admins who did not opt out."""
    opted_out = EmailOptOut.objects.filter(organization_id=organization_id).values("user_id")
    return sorted(
        Membership.objects.filter(organization_id=organization_id, role__in=MANAGER_ROLES)
        .exclude(user_id__in=opted_out)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )


def notifications_mark_read(
    *, organization: Organization, ids: list[uuid.UUID] | None = None
) -> int:
    """Mark some (``ids``) or all unread notifications of the organization read."""
    unread = Notification.objects.filter(organization=organization, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=ids)
    return unread.update(read_at=timezone.now())


def email_opt_out_set(*, user, organization: Organization, opted_out: bool) -> None:
    if opted_out:
        EmailOptOut.objects.get_or_create(user=user, organization=organization)
    else:
        EmailOptOut.objects.filter(user=user, organization=organization).delete()
