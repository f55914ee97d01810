from django.contrib import admin

from osmos.notifications.models import Incident, Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "organization", "event", "message", "read_at")
    list_filter = ("event",)
    search_fields = ("message", "organization__name", "subject_id")
    readonly_fields = [f.name for f in Notification._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ("key", "organization", "opened_at", "closed_at")
    search_fields = ("key", "organization__name")
    readonly_fields = ("organization", "key", "opened_at")
