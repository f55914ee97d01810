"""Forms of the pipeline pages: they shape the posted builder into the arguments of
``pipelines.services`` and place its errors; the services validate.

The mapping table posts one ``map_<destination field>`` select per destination field (value: a
source field name, or empty for "not sent"). The schedule is a choice of ``schedule``: manual,
a preset, or ``custom`` with the ``cron`` text; plus ``timezone``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.http import QueryDict

from connectors.models import Connector
from connectors.schema import FieldSpec
from osmos.errors import InputError
from pipelines import cron
from pipelines.mapping import default_mapping, is_compatible
from pipelines.models import Pipeline, SyncMode

MANUAL = "manual"
CUSTOM = "custom"
# (key, label, cron expression)
SCHEDULE_PRESETS = [
    ("hourly", "Every hour, on the hour", "0 * * * *"),
    ("daily", "Every day at 07:00", "0 7 * * *"),
    ("weekdays", "Weekdays at 07:00", "0 7 * * 1-5"),
    ("weekly", "Every Monday at 07:00", "0 7 * * 1"),
]
_PRESET_CRON = {key: expression for key, _label, expression in SCHEDULE_PRESETS}
DEFAULT_TIMEZONE = "UTC"


@dataclass
class MappingRow:
    """One destination field and the source field chosen for it."""

    destination: FieldSpec
    source: str = ""
    warning: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def input_name(self) -> str:
        return f"map_{self.destination.name}"


def specs_of(connector: Connector) -> list[FieldSpec]:
    return [FieldSpec(*spec) for spec in connector.field_specs()]


def row_warning(
    *, destination: FieldSpec, source_name: str, sources: Mapping[str, FieldSpec]
) -> str:
    """What the builder warns about one row before saving (the service refuses the same)."""
    source = sources.get(source_name)
    if source is None:
        return "" if destination.nullable else "Required field: choose a source field."
    if not is_compatible(source.type, destination.type):
        return f"Type mismatch: {source.type} cannot feed {destination.type}."
    if source.nullable and not destination.nullable:
        return "The source field may be empty but this field is required."
    return ""


def schedule_choice(cron_expression: str) -> str:
    """The builder's choice for a stored cron expression: a preset key, custom or manual."""
    if not cron_expression:
        return MANUAL
    for key, expression in _PRESET_CRON.items():
        if expression == cron_expression:
            return key
    return CUSTOM


def next_run_times(
    *, cron_expression: str, timezone: str, after: datetime, count: int = 3
) -> list[datetime]:
    """The next ``count`` firing times (aware, UTC); raises ``cron.InvalidSchedule``."""
    cron.check_schedule(cron=cron_expression, timezone=timezone)
    times: list[datetime] = []
    moment = after
    for _ in range(count):
        moment = cron.next_fire_time(cron=cron_expression, timezone=timezone, after=moment)
        times.append(moment)
    return times


@dataclass
class PipelineDraft:
    """The builder's state: what is shown, what is sent to the services, and the errors."""

    source: Connector
    destination: Connector
    name: str = ""
    rows: list[MappingRow] = field(default_factory=list)
    schedule: str = MANUAL
    cron: str = ""
    timezone: str = DEFAULT_TIMEZONE
    sync_mode: str = SyncMode.INCREMENTAL.value
    enabled: bool = True
    errors: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def new(cls, *, source: Connector, destination: Connector) -> PipelineDraft:
        draft = cls(
            source=source, destination=destination, name=f"{source.name} → {destination.name}"
        )
        mapping = default_mapping(
            source_fields=specs_of(source), destination_fields=specs_of(destination)
        )
        draft.set_rows(mapping)
        return draft

    @classmethod
    def of(cls, pipeline: Pipeline) -> PipelineDraft:
        draft = cls(
            source=pipeline.source,
            destination=pipeline.destination,
            name=pipeline.name,
            schedule=schedule_choice(pipeline.schedule_cron),
            cron=pipeline.schedule_cron,
            timezone=pipeline.schedule_timezone or DEFAULT_TIMEZONE,
            sync_mode=pipeline.sync_mode,
            enabled=pipeline.enabled,
        )
        draft.set_rows(pipeline.mapping)
        return draft

    @classmethod
    def from_post(
        cls, data: QueryDict, *, source: Connector, destination: Connector
    ) -> PipelineDraft:
        draft = cls(
            source=source,
            destination=destination,
            name=data.get("name", "").strip(),
            schedule=data.get("schedule", MANUAL),
            cron=data.get("cron", "").strip(),
            timezone=data.get("timezone", "").strip() or DEFAULT_TIMEZONE,
            sync_mode=data.get("sync_mode", ""),
            enabled=data.get("enabled") == "on",
        )
        draft.set_rows(
            {
                spec.name: data.get(f"map_{spec.name}", "")
                for spec in specs_of(destination)
                if data.get(f"map_{spec.name}")
            }
        )
        if draft.schedule in _PRESET_CRON:
            draft.cron = _PRESET_CRON[draft.schedule]
        return draft

    def set_rows(self, mapping: Mapping[str, str]) -> None:
        sources = {spec.name: spec for spec in specs_of(self.source)}
        self.rows = []
        for spec in specs_of(self.destination):
            chosen = mapping.get(spec.name, "")
            warning = row_warning(destination=spec, source_name=chosen, sources=sources)
            self.rows.append(MappingRow(destination=spec, source=chosen, warning=warning))

    def mapping(self) -> dict[str, str]:
        return {row.destination.name: row.source for row in self.rows if row.source}

    def service_arguments(self) -> dict[str, Any]:
        """The keyword arguments ``pipeline_create`` and ``pipeline_update`` both take."""
        return {
            "name": self.name,
            "mapping": self.mapping(),
            "schedule": self.schedule_argument(),
            "sync_mode": self.sync_mode,
            "enabled": self.enabled,
        }

    def schedule_argument(self) -> dict[str, str] | None:
        """The ``schedule`` argument of the services: None means manual only."""
        if self.schedule == MANUAL:
            return None
        return {"cron": self.cron, "timezone": self.timezone}

    def attach_errors(self, errors: Sequence[InputError]) -> None:
        """Place the services' ``InputError`` items next to fields and rows.

        ``mapping.<destination field>`` goes to its row; ``schedule.cron`` and
        ``schedule.timezone`` to those inputs; any other field to its own key.
        """
        by_name = {row.destination.name: row for row in self.rows}
        for error in errors:
            path = error.field or "general"
            head, _dot, rest = path.partition(".")
            if head == "mapping" and rest in by_name:
                by_name[rest].errors.append(error.message)
            elif head == "schedule" and rest in {"cron", "timezone"}:
                self.errors.setdefault(rest, []).append(error.message)
            else:
                self.errors.setdefault(head, []).append(error.message)

    @property
    def has_errors(self) -> bool:
        return bool(self.errors or any(row.errors for row in self.rows))
