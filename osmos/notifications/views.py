"""The notifications page: the list, mark read, the person's e-mail opt-out, and (owners and
admins) the organization's notification webhook with the outcome of its last attempt."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from osmos.errors import InvalidInput
from osmos.notifications import services, webhook
from osmos.notifications.models import EmailOptOut, Notification
from osmos.tenancy.views import organization_required, require_manager

PAGE_SIZE = 100


def _page(request, *, status: int = 200, **extra):
    organization = request.organization
    notifications = Notification.objects.filter(organization=organization)[:PAGE_SIZE]
    opted_out = EmailOptOut.objects.filter(user=request.user, organization=organization).exists()
    is_manager = request.membership.can_manage
    context = {
        "notifications": notifications,
        "opted_out": opted_out,
        "is_manager": is_manager,
        "webhook": webhook.webhook_get(organization=organization) if is_manager else None,
        **extra,
    }
    return render(request, "notifications/list.html", context, status=status)


@organization_required
def notification_list(request):
    return _page(request)


@organization_required
@require_POST
def notification_mark_all_read(request):
    services.notifications_mark_read(organization=request.organization)
    return redirect("notifications")


@organization_required
@require_POST
def email_preference(request):
    services.email_opt_out_set(
        user=request.user,
        organization=request.organization,
        opted_out=request.POST.get("email") != "on",
    )
    return redirect("notifications")


@organization_required
@require_POST
def webhook_save(request):
    """Set (or remove, with an empty URL) the webhook; a new one shows its secret once."""
    require_manager(request)
    url = request.POST.get("url", "").strip()
    if not url:
        webhook.webhook_delete(organization=request.organization)
        messages.success(request, "The notification webhook is removed.")
        return redirect("notifications")
    try:
        _, secret = webhook.webhook_set(organization=request.organization, url=url)
    except InvalidInput as error:
        return _page(request, webhook_error=error.detail, webhook_url=url, status=400)
    if secret is None:
        messages.success(request, "The notification webhook's URL is saved.")
        return redirect("notifications")
    return _page(request, new_secret=secret)


@organization_required
@require_POST
def webhook_rotate(request):
    require_manager(request)
    secret = webhook.webhook_rotate_secret(organization=request.organization)
    if secret is None:
        return redirect("notifications")
    return _page(request, new_secret=secret)
