"""Forms of the connector pages. They only shape what the browser posts into the arguments of
``connectors.services``; the services validate, and their ``InputError``s are shown next to the
fields by ``attach_errors``.

The editable tables (schema fields, headers) post one value per row under repeated names, in
page order: ``field_key``/``field_name``/``field_type`` and ``field_nullable`` (the keys of
the rows whose box is ticked), ``header_name``/``header_value``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings
from django.http import QueryDict

from connectors.models import Connector, Direction, FieldType, HttpMethod, WriteMode
from connectors.services import DESTINATION_DEFAULTS
from connectors.validation import DESTINATION_KEYS
from osmos.errors import InputError
from osmos.forms import form_field_of

SYSTEM_CHOICES = [("http_api", "HTTP API")]
DIRECTION_CHOICES = [
    (Direction.DESTINATION.value, "Destination"),
    (Direction.SOURCE.value, "Source"),
]
DIRECTION_HELP = {
    Direction.DESTINATION.value: "We call your API: osmos sends pipeline records to your URL.",
    Direction.SOURCE.value: "Call our API: you POST records to a private URL osmos gives you.",
}


class ConnectorFilterForm(forms.Form):
    """The list's search box and direction filter (GET)."""

    q = forms.CharField(required=False, label="Search by name", max_length=200)
    direction = forms.ChoiceField(
        required=False,
        label="Direction",
        choices=[("", "All directions"), *DIRECTION_CHOICES],
    )


@dataclass
class SchemaRow:
    key: str
    name: str = ""
    type: str = FieldType.STRING.value
    nullable: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class HeaderRow:
    name: str = ""
    value: str = ""
    errors: list[str] = field(default_factory=list)


def _int_or_raw(value: str) -> Any:
    """An integer when the text is one; else the text itself, for the service to refuse."""
    try:
        return int(value.strip())
    except ValueError:
        return value


def schema_rows(data: QueryDict) -> list[SchemaRow]:
    """The schema table as posted, in page order; rows without a name are dropped."""
    keys = data.getlist("field_key")
    names = data.getlist("field_name")
    types = data.getlist("field_type")
    nullable = set(data.getlist("field_nullable"))
    rows = []
    for key, name, type_ in zip(keys, names, types, strict=False):
        if name.strip():
            rows.append(SchemaRow(key=key, name=name.strip(), type=type_, nullable=key in nullable))
    return rows


def header_rows(data: QueryDict) -> list[HeaderRow]:
    """The headers table as posted; rows with neither name nor value are dropped."""
    names = data.getlist("header_name")
    values = data.getlist("header_value")
    return [
        HeaderRow(name=name.strip(), value=value)
        for name, value in zip(names, values, strict=False)
        if name.strip() or value
    ]


def destination_settings(data: QueryDict, headers: Sequence[HeaderRow]) -> dict[str, Any]:
    """The ``destination`` argument of the services from the settings fields."""
    return {
        "url": data.get("url", "").strip(),
        "method": data.get("method", HttpMethod.POST.value),
        "headers": [{"name": row.name, "value": row.value} for row in headers],
        "write_mode": data.get("write_mode", WriteMode.BATCH.value),
        "batch_size": _int_or_raw(data.get("batch_size", str(DESTINATION_DEFAULTS["batch_size"]))),
        "split_failed_batches": data.get("split_failed_batches") == "on",
        "timeout_seconds": _int_or_raw(
            data.get("timeout_seconds", str(DESTINATION_DEFAULTS["timeout_seconds"]))
        ),
        "rate_limit_per_second": _number_or_none(data.get("rate_limit_per_second", "")),
        "max_concurrency": _int_or_raw(
            data.get("max_concurrency", str(DESTINATION_DEFAULTS["max_concurrency"]))
        ),
        "response_format": data.get("response_format", DESTINATION_DEFAULTS["response_format"]),
        "body_template": body_template_of(data.get("body_template", "")),
    }


class UnparsableJson(str):
    """Template text that is not JSON: the services refuse it (``osmos.outbound.shaping``:
    "not valid JSON") and the form shows it back as typed."""


def body_template_of(text: str) -> Any:
    """The body template posted as text: None when empty, else its JSON value (or the text
    as ``UnparsableJson``, for the services to refuse)."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return UnparsableJson(text)


def body_template_text(value: Any) -> str:
    """A body template as the form's text area shows it."""
    if value is None:
        return ""
    if isinstance(value, UnparsableJson):
        return str(value)
    return json.dumps(value, indent=2, ensure_ascii=False)


def _number_or_none(value: str) -> Any:
    """None for an empty field (no limit), a number when the text is one, else the text
    itself, for the service to refuse."""
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return value
    return number if number == number else value  # NaN is not a rate


@dataclass
class ConnectorDraft:
    """Everything the connector pages show in their form, with the errors of each part.

    ``values`` are the plain settings as posted (for re-display); ``errors`` maps a field
    (``name``, ``url``, ``batch_size``...) to its messages; ``general`` are the errors that
    belong to no single field.
    """

    values: dict[str, Any]
    schema: list[SchemaRow]
    headers: list[HeaderRow]
    errors: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    @classmethod
    def initial(cls, *, direction: str = "", destination: dict | None = None) -> ConnectorDraft:
        values = {"system": "http_api", "direction": direction, "name": ""}
        values.update({k: v for k, v in DESTINATION_DEFAULTS.items() if k != "headers"})
        headers: list[HeaderRow] = []
        if destination:
            values.update({k: v for k, v in destination.items() if k != "headers"})
            headers = [HeaderRow(name=h["name"], value=h["value"]) for h in destination["headers"]]
        return cls(values=values, schema=[SchemaRow(key="f0")], headers=headers)

    @classmethod
    def from_post(cls, data: QueryDict) -> ConnectorDraft:
        headers = header_rows(data)
        values = {
            "system": data.get("system", ""),
            "direction": data.get("direction", ""),
            "name": data.get("name", "").strip(),
            **destination_settings(data, headers),
        }
        return cls(values=values, schema=schema_rows(data), headers=headers)

    @property
    def name(self) -> str:
        return self.values["name"]

    @property
    def body_template_text(self) -> str:
        return body_template_text(self.values.get("body_template"))

    @property
    def direction(self) -> str:
        return self.values["direction"]

    def fields(self) -> list[dict[str, Any]]:
        return [{"name": r.name, "type": r.type, "nullable": r.nullable} for r in self.schema]

    def destination(self) -> dict[str, Any]:
        settings = {
            key: self.values[key] for key in DESTINATION_KEYS if key not in ("headers", "signing")
        }
        settings["headers"] = [{"name": r.name, "value": r.value} for r in self.headers]
        return settings

    def add_error(self, key: str, message: str) -> None:
        self.errors.setdefault(key, []).append(message)

    def attach_errors(self, errors: Sequence[InputError]) -> None:
        """Put each service error next to its field, its schema row or its header row."""
        for error in errors:
            path, index = error.field or "", error.index
            if path.startswith("schema") and index is not None and index < len(self.schema):
                self.schema[index].errors.append(error.message)
                continue
            in_headers = index is not None and index < len(self.headers)
            if path.startswith("destination.headers") and in_headers:
                self.headers[index].errors.append(error.message)
                continue
            key = form_field_of(
                InputError(field=path.removeprefix("destination."), message=error.message),
                {"name", "direction", "schema", "headers", *self.values},
            )
            if key is not None:
                self.add_error(key, error.message)
            else:
                self.general.append(error.message)

    @property
    def has_errors(self) -> bool:
        return bool(
            self.errors
            or self.general
            or any(r.errors for r in self.schema)
            or any(r.errors for r in self.headers)
        )


def duplicate_draft(connector: Connector) -> ConnectorDraft:
    """The duplicate wizard's first state: "<name> (copy)" and the original's schema, editable
    (duplicating is how a schema changes, SPEC §3.4)."""
    draft = ConnectorDraft.initial(direction=connector.direction)
    draft.values["name"] = f"{connector.name} (copy)"
    draft.schema = [
        SchemaRow(key=f"f{position}", name=name, type=type_, nullable=nullable)
        for position, (name, type_, nullable) in enumerate(connector.field_specs())
    ]
    return draft


FIELD_TYPES = FieldType.values
METHODS = HttpMethod.values
WRITE_MODES = WriteMode.choices

_EXAMPLE_VALUES: dict[str, Any] = {
    "string": "text",
    "integer": 42,
    "number": 9.5,
    "boolean": True,
    "date": "2025-01-31",
    "datetime": "2025-01-31T09:30:00+00:00",
    "json": {"any": "value"},
}


def curl_example_body(field_specs: Sequence[tuple[str, str, bool]]) -> str:
    """A one-record JSON array matching the schema, quoted for a shell's single quotes."""
    record = {name: _EXAMPLE_VALUES.get(type_) for name, type_, _nullable in field_specs}
    return json.dumps([record], ensure_ascii=False).replace("'", "'\\''")


def json_cell(value: Any) -> str | None:
    """A record value as shown in a table cell: text as is, anything else as JSON, cut to
    ``PREVIEW_MAX_CHARS`` characters (a record may hold megabytes: a page never does)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    limit = settings.PREVIEW_MAX_CHARS
    return text if len(text) <= limit else text[: limit - 1] + "…"
