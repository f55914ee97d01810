"""Support staff can look at stored records and idempotency keys, never edit them.

Records are written only by ingest (atomically, with their sequence); an edit or a delete
here would break the per-connector sequence that pipeline cursors rely on.
"""

from __future__ import annotations

from django.contrib import admin

from ingest.models import IdempotencyKey, Record


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Record)
class RecordAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "connector", "organization", "received_at"]
    list_select_related = ["connector", "organization"]
    # Filtering by connector uses the (connector, sequence) index; an exact count of a table
    # of millions of rows would not be cheap, so the admin does not ask for one.
    list_filter = ["organization"]
    show_full_result_count = False
    ordering = ["-id"]
    fields = ["organization", "connector", "sequence", "received_at", "data"]
    readonly_fields = fields


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ["key", "connector", "organization", "created_at", "response_status"]
    list_select_related = ["connector", "organization"]
    search_fields = ["key"]
    ordering = ["-created_at"]
    fields = [
        "organization",
        "connector",
        "key",
        "created_at",
        "request_hash",
        "response_status",
        "response_body",
    ]
    readonly_fields = fields
