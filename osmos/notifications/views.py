"""The notifications page: the list, mark read, and the person's e-mail opt-out."""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from osmos.notifications import services
from osmos.notifications.models import EmailOptOut, Notification
from osmos.tenancy.views import organization_required

PAGE_SIZE = 100


@organization_required
def notification_list(request):
    organization = request.organization
    notifications = Notification.objects.filter(organization=organization)[:PAGE_SIZE]
    opted_out = EmailOptOut.objects.filter(user=request.user, organization=organization).exists()
    context = {
        "notifications": notifications,
        "opted_out": opted_out,
        "is_manager": request.membership.can_manage,
    }
    return render(request, "notifications/list.html", context)


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
