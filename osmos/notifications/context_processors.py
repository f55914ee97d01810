from __future__ import annotations

from osmos.notifications.models import Notification


def unread_notifications(request):
    """The unread count for the badge in the header (one indexed count per page)."""
    organization = getattr(request, "organization", None)
    if organization is None:
        return {}
    count = Notification.objects.filter(organization=organization, read_at__isnull=True).count()
    return {"unread_notifications": count}
