"""Admin for support staff: pipelines and runs across organizations, logs read-only."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from osmos.admin_base import ViewOnly
from pipelines.models import (
    ACTIVE_RUN_STATES,
    Pipeline,
    RecordFailure,
    RequestLog,
    Run,
    Trigger,
)
from pipelines.services import PipelineConflict, run_cancel, run_create


class ReadOnlyAdmin(ViewOnly, admin.ModelAdmin):
    """Rows written only by the delivery engine: support can look, not change."""


@admin.action(description="Run selected pipelines now")
def run_now(modeladmin, request, queryset):
    for pipeline in queryset:
        run_create(pipeline=pipeline, trigger=Trigger.MANUAL)
    messages.success(request, f"{queryset.count()} run(s) queued.")


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "source",
        "destination",
        "sync_mode",
        "enabled",
        "schedule_cron",
        "schedule_timezone",
        "next_run_at",
        "cursor",
    ]
    list_filter = ["enabled", "sync_mode", "organization"]
    search_fields = ["name", "organization__name", "organization__slug"]
    actions = [run_now]
    # Editing goes through the services (mapping and schedule validation): admin is for looking.
    readonly_fields = [f.name for f in Pipeline._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.action(description="Run the pipelines of the selected runs again")
def rerun(modeladmin, request, queryset):
    for run in queryset.select_related("pipeline"):
        run_create(pipeline=run.pipeline, trigger=Trigger.MANUAL)
    messages.success(request, f"{queryset.count()} run(s) queued.")


@admin.action(description="Cancel the selected runs")
def cancel(modeladmin, request, queryset):
    done = 0
    for run in queryset.filter(state__in=ACTIVE_RUN_STATES):
        try:
            run_cancel(run=run)
            done += 1
        except PipelineConflict:
            continue  # it finished meanwhile
    messages.success(request, f"{done} run(s) cancelled.")


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "pipeline",
        "organization",
        "trigger",
        "state",
        "records_total",
        "records_delivered",
        "records_failed",
        "requests_made",
        "attempts",
        "created_at",
        "finished_at",
    ]
    list_filter = ["state", "trigger", "organization"]
    search_fields = ["id", "pipeline__name"]
    readonly_fields = ["logs"]
    actions = [rerun, cancel]

    @admin.display(description="Logs")
    def logs(self, run: Run) -> str:
        failures = reverse("admin:pipelines_recordfailure_changelist") + f"?run__id__exact={run.pk}"
        requests = reverse("admin:pipelines_requestlog_changelist") + f"?run__id__exact={run.pk}"
        return format_html(
            '<a href="{}">failed records</a> · <a href="{}">requests</a>', failures, requests
        )


@admin.register(RecordFailure)
class RecordFailureAdmin(ReadOnlyAdmin):
    list_display = ["run", "sequence", "http_status", "reason", "created_at"]
    list_filter = ["http_status"]
    search_fields = ["run__id"]


@admin.register(RequestLog)
class RequestLogAdmin(ReadOnlyAdmin):
    list_display = [
        "run",
        "sequence_from",
        "sequence_to",
        "record_count",
        "attempt",
        "status",
        "duration_ms",
        "error",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["run__id"]
