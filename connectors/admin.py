"""Connectors in the Django admin, for support staff across all organizations.

Support staff look, rename, change destination settings and delete; every write goes through
``connectors.services`` so the admin applies the same rules as the API (URL guard, unique
names, pipelines protecting a connector). Creating connectors is the customers' job (it needs
a schema and, for a source, handing over a secret ingest URL), so "add" is disabled here.

Secrets: header values are shown masked only; the ingest token (and its hash and lookup
prefix) is never shown. The schema is read-only: it cannot change once saved.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from connectors import hooks
from connectors.models import (
    MAX_BATCH_SIZE,
    Connector,
    Direction,
    HttpMethod,
    SchemaField,
    SourceSettings,
    WriteMode,
)
from connectors.services import (
    ConnectorInUse,
    connector_delete,
    connector_update,
    pipelines_using,
    validate_connector_changes,
)
from connectors.validation import MAX_TIMEOUT_SECONDS
from osmos.admin_base import ViewOnly
from osmos.errors import InvalidInput
from osmos.forms import attach_input_errors

# Destination settings edited on the connector's own form (headers are shown, not edited:
# their values are secrets the admin only ever sees masked).
DESTINATION_FORM_FIELDS = (
    "url",
    "method",
    "write_mode",
    "batch_size",
    "split_failed_batches",
    "timeout_seconds",
)


class ConnectorAdminForm(forms.ModelForm):
    url = forms.CharField(max_length=2048, required=False, label="URL")
    method = forms.ChoiceField(choices=HttpMethod.choices, required=False)
    write_mode = forms.ChoiceField(choices=WriteMode.choices, required=False)
    batch_size = forms.IntegerField(min_value=1, max_value=MAX_BATCH_SIZE, required=False)
    split_failed_batches = forms.BooleanField(required=False)
    timeout_seconds = forms.IntegerField(min_value=1, max_value=MAX_TIMEOUT_SECONDS, required=False)

    class Meta:
        model = Connector
        fields = ["name"]

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self._is_destination:
            settings = self.instance.destination
            for name in DESTINATION_FORM_FIELDS:
                self.fields[name].initial = getattr(settings, name)
                self.fields[name].required = name != "split_failed_batches"

    @property
    def _is_destination(self) -> bool:
        return self.instance.pk is not None and self.instance.direction == Direction.DESTINATION

    def destination_changes(self) -> dict[str, Any] | None:
        """The destination settings to save (None for a source)."""
        if not self._is_destination:
            return None
        return {name: self.cleaned_data.get(name) for name in DESTINATION_FORM_FIELDS}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            validate_connector_changes(
                connector=self.instance,
                name=cleaned.get("name"),
                destination=self.destination_changes(),
            )
        except InvalidInput as exc:
            attach_input_errors(self, exc.errors)
        return cleaned


class SchemaFieldInline(ViewOnly, admin.TabularInline):
    """The schema, read-only: it can never change once the connector is saved."""

    model = SchemaField
    fields = ["position", "name", "type", "nullable"]
    readonly_fields = fields
    ordering = ["position"]
    extra = 0
    can_delete = False
    verbose_name_plural = "schema (immutable: duplicate the connector to change it)"


class SourceSettingsInline(ViewOnly, admin.StackedInline):
    """Where a source stands; the token, its hash and its lookup prefix are never shown."""

    model = SourceSettings
    fields = ["state", "record_count", "last_sequence", "token_rotated_at"]
    readonly_fields = fields
    can_delete = False
    verbose_name_plural = "source (the ingest token is stored hashed and never shown)"


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    form = ConnectorAdminForm
    list_display = ["name", "organization", "direction", "source_state", "created_at"]
    list_filter = ["organization", "direction", "source__state"]
    list_select_related = ["organization", "source"]
    search_fields = ["name"]
    readonly_fields = ["id", "organization", "direction", "created_at", "updated_at", "headers"]

    def get_fieldsets(self, request: HttpRequest, obj: Connector | None = None):
        general = (None, {"fields": ["id", "name", "organization", "direction"]})
        times = ("Times", {"fields": ["created_at", "updated_at"]})
        if obj is None or obj.is_source:
            return [general, times]
        destination = (
            "Destination (we call your API)",
            {"fields": [*DESTINATION_FORM_FIELDS, "headers"]},
        )
        return [general, destination, times]

    def get_inlines(self, request: HttpRequest, obj: Connector | None):
        if obj is None:
            return []
        return [SchemaFieldInline, SourceSettingsInline] if obj.is_source else [SchemaFieldInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Connector]:
        return super().get_queryset(request).select_related("organization", "source")

    @admin.display(description="source state", ordering="source__state")
    def source_state(self, obj: Connector) -> str:
        return obj.source.get_state_display() if obj.is_source else "—"

    @admin.display(description="headers (values masked)")
    def headers(self, obj: Connector) -> str:
        masked = obj.destination.masked_headers()
        if not masked:
            return "—"
        rows = format_html_join("", "<li>{}: {}</li>", ((h["name"], h["value"]) for h in masked))
        return format_html("<ul>{}</ul>", rows)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Customers create connectors (schema, ingest URL handed over once); support does not.
        return False

    def save_model(
        self, request: HttpRequest, obj: Connector, form: ConnectorAdminForm, change: bool
    ) -> None:
        connector_update(
            connector=obj,
            name=form.cleaned_data["name"],
            destination=form.destination_changes(),
        )

    def get_deleted_objects(self, objs, request: HttpRequest):
        """What deleting would remove, counted in SQL (a source may hold millions of records).

        Django's default lists every related row; here: the connectors, counts, and the
        pipelines that protect them.
        """
        connectors = list(objs)
        ids = [c.pk for c in connectors]
        deleted = [f"Connector: {c} ({c.organization})" for c in connectors]
        counts = {
            "connectors": len(connectors),
            "schema fields": SchemaField.objects.filter(connector_id__in=ids).count(),
            "records": hooks.records_count(connector_ids=ids),
        }
        protected = [
            f"Pipeline “{name}” uses connector “{c}”"
            for c in connectors
            for name in pipelines_using(connector=c)
        ]
        perms_needed = set() if self.has_delete_permission(request) else {"connector"}
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Connector) -> None:
        try:
            connector_delete(connector=obj)
        except ConnectorInUse as exc:  # a pipeline appeared after the confirmation page
            messages.error(request, str(exc))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Connector]) -> None:
        for connector in queryset:
            self.delete_model(request, connector)
