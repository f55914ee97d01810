"""Writes of the connectors app: create, edit, duplicate, delete, rotate the ingest token.

Every service validates its whole input first and raises ``ConnectorError`` carrying a list of
``InputError`` values (never ad hoc strings), so the API and the pages show the same messages.
Nothing is written unless the whole input is valid.

Error ``field`` names are the ones users see, in the API's JSON keys: ``name``, ``direction``,
``schema`` (``index`` = position of the schema field, ``key`` = its attribute),
``destination`` (the settings as a whole), ``destination.<setting>`` and
``destination.headers`` (``index`` = position of the header, ``key`` = ``name`` or ``value``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, router, transaction
from django.db.models import PROTECT, ProtectedError
from django.db.models.deletion import Collector
from django.utils import timezone

from connectors.models import (
    MAX_BATCH_SIZE,
    Connector,
    DestinationSettings,
    Direction,
    HttpMethod,
    SchemaField,
    SourceSettings,
    WriteMode,
    allow_schema_delete,
)
from connectors.schema import FieldSpec, schema_definition_errors
from connectors.urlguard import UnsafeURL, validate_destination_url
from osmos import crypto
from osmos.tenancy.models import Organization, new_secret_token

MAX_NAME_LENGTH = Connector._meta.get_field("name").max_length
MAX_TIMEOUT_SECONDS = 300
MAX_HEADERS = 50
MAX_HEADER_NAME_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 8192
# Set by osmos on every request (SPEC §5) or by HTTP framing itself: a customer value would
# either be ignored or corrupt the request.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "content-type",
        "user-agent",
        "idempotency-key",
    }
)
DESTINATION_KEYS = (
    "url",
    "method",
    "headers",
    "write_mode",
    "batch_size",
    "split_failed_batches",
    "timeout_seconds",
)
DESTINATION_DEFAULTS: dict[str, Any] = {
    "method": HttpMethod.POST.value,
    "headers": [],
    "write_mode": WriteMode.BATCH.value,
    "batch_size": MAX_BATCH_SIZE,
    "split_failed_batches": False,
    "timeout_seconds": 30,
}
# RFC 9110 "token": the characters a header name may contain.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible Latin-1 text, space and tab: what http.client can put on the wire unchanged.
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


@dataclass(frozen=True, slots=True)
class InputError:
    """One problem in the input of a connector service (see the module docstring for fields)."""

    field: str
    message: str
    index: int | None = None
    key: str | None = None


class ConnectorError(Exception):
    """The input was refused; ``errors`` says why, field by field. Nothing was written."""

    def __init__(self, errors: Sequence[InputError]):
        self.errors = list(errors)
        super().__init__("; ".join(f"{error.field}: {error.message}" for error in self.errors))


class ConnectorInUse(Exception):
    """The connector cannot be deleted: pipelines use it (``pipeline_names``, sorted)."""

    def __init__(self, pipeline_names: Sequence[str]):
        self.pipeline_names = sorted(pipeline_names)
        names = ", ".join(self.pipeline_names)
        noun = "pipeline" if len(self.pipeline_names) == 1 else "pipelines"
        super().__init__(
            f"This connector is used by the {noun} {names}; delete or change "
            f"{'it' if len(self.pipeline_names) == 1 else 'them'} first."
        )


@dataclass(frozen=True, slots=True)
class ConnectorWithToken:
    """A connector and, for a source whose token was just issued, the plain ingest token.

    The token is never stored (only its hash): show it once, then forget it.
    """

    connector: Connector
    ingest_token: str | None = None


def _is_masked(value: str) -> bool:
    return value.startswith(crypto.MASK)


# --- validation ---------------------------------------------------------------------------------


def _name_errors(*, organization: Organization, name: object, exclude: Connector | None) -> list:
    if name is not None and not isinstance(name, str):
        return [InputError(field="name", message="The name must be text.")]
    if not name or not name.strip():
        return [InputError(field="name", message="A connector needs a name.")]
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        message = f"The name must be at most {MAX_NAME_LENGTH} characters long."
        return [InputError(field="name", message=message)]
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return [InputError(field="name", message="The name must not contain control characters.")]
    taken = Connector.objects.for_organization(organization).filter(name__iexact=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    if taken.exists():
        message = f"A connector named “{name}” already exists in this organization."
        return [InputError(field="name", message=message)]
    return []


def _schema_errors(fields: object) -> list[InputError]:
    return [
        InputError(field="schema", message=error.message, index=error.index, key=error.field)
        for error in schema_definition_errors(fields=fields)
    ]


def _int_setting_error(key: str, value: object, low: int, high: int) -> InputError | None:
    # bool is an int in Python, but `true` is not a batch size.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return InputError(
            field=f"destination.{key}", message=f"Must be a whole number from {low} to {high:,}."
        )
    return None


def _choice_error(key: str, value: object, choices: Sequence[str]) -> InputError | None:
    if value not in choices:
        message = f"Must be one of {', '.join(choices)}."
        return InputError(field=f"destination.{key}", message=message)
    return None


def _url_errors(url: object) -> list[InputError]:
    if not isinstance(url, str) or not url.strip():
        return [InputError(field="destination.url", message="A destination needs a URL.")]
    try:
        validate_destination_url(url.strip())
    except UnsafeURL as exc:
        return [InputError(field="destination.url", message=str(exc))]
    return []


def _header_item_errors(index: int, item: object, seen: set[str]) -> list[InputError]:
    def error(key: str | None, message: str) -> InputError:
        return InputError(field="destination.headers", message=message, index=index, key=key)

    if not isinstance(item, Mapping) or set(item) != {"name", "value"}:
        return [error(None, "Each header is an object with exactly the keys name and value.")]
    name, value = item["name"], item["value"]
    errors = []
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        errors.append(error("name", "A header name is letters, digits and !#$%&'*+-.^_`|~ only."))
    elif len(name) > MAX_HEADER_NAME_LENGTH:
        errors.append(error("name", f"A header name is at most {MAX_HEADER_NAME_LENGTH} long."))
    elif name.lower() in RESERVED_HEADERS:
        errors.append(error("name", f"{name} is set by osmos itself and cannot be configured."))
    elif name.lower() in seen:
        errors.append(error("name", f"The header {name} is given twice."))
    else:
        seen.add(name.lower())
    if not isinstance(value, str) or not value:
        errors.append(error("value", "A header needs a value."))
    elif len(value) > MAX_HEADER_VALUE_LENGTH:
        errors.append(error("value", f"A header value is at most {MAX_HEADER_VALUE_LENGTH} long."))
    elif _is_masked(value):
        pass  # "keep the stored value": checked against the stored headers, not as text
    elif not _HEADER_VALUE.fullmatch(value):
        errors.append(
            error("value", "A header value is printable Latin-1 text without line breaks.")
        )
    return errors


def _headers_errors(headers: object) -> list[InputError]:
    if isinstance(headers, str | bytes) or not isinstance(headers, Sequence):
        message = "Headers are a list of {name, value} objects."
        return [InputError(field="destination.headers", message=message)]
    if len(headers) > MAX_HEADERS:
        message = f"At most {MAX_HEADERS} headers."
        return [InputError(field="destination.headers", message=message)]
    seen: set[str] = set()
    return [
        error
        for index, item in enumerate(headers)
        for error in _header_item_errors(index, item, seen)
    ]


def _destination_errors(settings: Mapping[str, Any]) -> list[InputError]:
    """Problems in (partial) destination settings; checks only the keys present."""
    checks = {
        "url": _url_errors,
        "headers": _headers_errors,
        "method": lambda v: [_choice_error("method", v, HttpMethod.values)],
        "write_mode": lambda v: [_choice_error("write_mode", v, WriteMode.values)],
        "batch_size": lambda v: [_int_setting_error("batch_size", v, 1, MAX_BATCH_SIZE)],
        "timeout_seconds": lambda v: [
            _int_setting_error("timeout_seconds", v, 1, MAX_TIMEOUT_SECONDS)
        ],
        "split_failed_batches": lambda v: [
            None
            if isinstance(v, bool)
            else InputError(field="destination.split_failed_batches", message="Must be a boolean.")
        ],
    }
    errors: list[InputError] = []
    for key, value in settings.items():
        check = checks.get(key)
        if check is None:
            message = f"Unknown setting; destination settings are {', '.join(DESTINATION_KEYS)}."
            errors.append(InputError(field=f"destination.{key}", message=message))
            continue
        errors.extend(error for error in check(value) if error is not None)
    return errors


def _destination_input_errors(
    *, direction: str, destination: object, required: bool
) -> list[InputError]:
    if direction != Direction.DESTINATION:
        if destination is None:
            return []
        message = "A source connector has no destination settings."
        return [InputError(field="destination", message=message)]
    if destination is None:
        if not required:
            return []
        return [InputError(field="destination", message="A destination needs its settings.")]
    if not isinstance(destination, Mapping):
        return [InputError(field="destination", message="Destination settings are an object.")]
    if required and "url" not in destination:
        return [InputError(field="destination.url", message="A destination needs a URL.")]
    return _destination_errors(destination)


def _raise_if(errors: list[InputError]) -> None:
    if errors:
        raise ConnectorError(errors)


def validate_connector_changes(
    *, connector: Connector, name: object = None, destination: object = None
) -> None:
    """Raise ``ConnectorError`` if ``connector_update`` would refuse these changes.

    Writes nothing; for forms that must show errors before saving (the admin, the pages).
    """
    errors = (
        []
        if name is None
        else _name_errors(organization=connector.organization, name=name, exclude=connector)
    )
    errors += _destination_input_errors(
        direction=connector.direction, destination=destination, required=False
    )
    if not errors and isinstance(destination, Mapping) and "headers" in destination:
        errors += _masked_value_errors(connector=connector, headers=destination["headers"])
    _raise_if(errors)


# --- headers ------------------------------------------------------------------------------------


def _stored_headers(connector: Connector) -> dict[str, tuple[str, str]]:
    """lower-case name -> (plain value, ciphertext) of the destination's stored headers."""
    stored = connector.destination.headers_encrypted
    return {h["name"].lower(): (crypto.decrypt(h["value"]), h["value"]) for h in stored}


def _masked_value_errors(*, connector: Connector, headers: Sequence[Mapping]) -> list:
    """A masked value is only accepted as "keep what is stored" for a header that has one."""
    stored = _stored_headers(connector)
    errors = []
    for index, item in enumerate(headers):
        if not _is_masked(item["value"]):
            continue
        kept = stored.get(item["name"].lower())
        if kept is None or crypto.mask(kept[0]) != item["value"]:
            message = (
                "This looks like a masked value but no stored value of this header matches it; "
                "enter the full value."
            )
            errors.append(
                InputError(field="destination.headers", message=message, index=index, key="value")
            )
    return errors


def _encrypted_headers(
    headers: Sequence[Mapping[str, str]], stored: Mapping[str, tuple[str, str]]
) -> list[dict[str, str]]:
    """Headers as stored: a masked value equal to the stored one's mask keeps the stored secret."""
    result = []
    for item in headers:
        kept = stored.get(item["name"].lower())
        if kept is not None and item["value"] == crypto.mask(kept[0]):
            ciphertext = kept[1]
        else:
            ciphertext = crypto.encrypt(item["value"])
        result.append({"name": item["name"], "value": ciphertext})
    return result


# --- services -----------------------------------------------------------------------------------


def _create_source_settings(connector: Connector) -> str:
    token, lookup, token_hash = new_secret_token()
    SourceSettings.objects.create(connector=connector, token_lookup=lookup, token_hash=token_hash)
    return token


def _insert_schema(connector: Connector, fields: Sequence[Mapping[str, Any] | FieldSpec]) -> None:
    specs = (
        FieldSpec(item["name"], item["type"], item["nullable"])
        if isinstance(item, Mapping)
        else FieldSpec(*item)
        for item in fields
    )
    SchemaField.objects.bulk_create(
        SchemaField(
            connector=connector,
            position=position,
            name=spec.name,
            type=spec.type,
            nullable=spec.nullable,
        )
        for position, spec in enumerate(specs)
    )


def _insert_connector(*, organization: Organization, name: str, direction: str) -> Connector:
    try:
        with transaction.atomic():
            return Connector.objects.create(
                organization=organization, name=name.strip(), direction=direction
            )
    except IntegrityError:  # another request took the name between the check and the insert
        message = f"A connector named “{name.strip()}” already exists in this organization."
        raise ConnectorError([InputError(field="name", message=message)]) from None


def connector_create(
    *,
    organization: Organization,
    name: str,
    direction: str,
    fields: Sequence[Mapping[str, Any] | FieldSpec],
    destination: Mapping[str, Any] | None = None,
) -> ConnectorWithToken:
    """Create a connector with its immutable schema and the settings of its direction.

    ``fields``: the schema, a list of ``{"name", "type", "nullable"}`` (or ``FieldSpec``).
    ``destination`` (for a destination only): ``url`` (required) and optionally ``method``,
    ``headers`` (a list of ``{"name", "value"}``), ``write_mode``, ``batch_size``,
    ``split_failed_batches``, ``timeout_seconds``. A source gets its ingest token, returned
    in plain text only here.
    Raises ``ConnectorError`` (nothing written) on any invalid input, including an unsafe URL.
    """
    errors = _name_errors(organization=organization, name=name, exclude=None)
    if direction not in Direction.values:
        message = f"Must be one of {', '.join(Direction.values)}."
        errors.append(InputError(field="direction", message=message))
    errors += _schema_errors(fields)
    errors += _destination_input_errors(direction=direction, destination=destination, required=True)
    _raise_if(errors)
    if any(_is_masked(h["value"]) for h in (destination or {}).get("headers", [])):
        message = "A new header cannot have a masked value; enter the full value."
        raise ConnectorError([InputError(field="destination.headers", message=message)])
    with transaction.atomic():
        connector = _insert_connector(organization=organization, name=name, direction=direction)
        _insert_schema(connector, fields)
        if direction == Direction.SOURCE:
            return ConnectorWithToken(connector, ingest_token=_create_source_settings(connector))
        values = {**DESTINATION_DEFAULTS, **destination}
        settings = DestinationSettings(
            connector=connector,
            url=values["url"].strip(),
            method=values["method"],
            write_mode=values["write_mode"],
            batch_size=values["batch_size"],
            split_failed_batches=values["split_failed_batches"],
            timeout_seconds=values["timeout_seconds"],
        )
        settings.headers_encrypted = _encrypted_headers(values["headers"], stored={})
        settings.save()
    return ConnectorWithToken(connector)


def connector_update(
    *,
    connector: Connector,
    name: str | None = None,
    destination: Mapping[str, Any] | None = None,
) -> Connector:
    """Rename a connector and/or change some destination settings. Never the schema.

    ``destination`` holds only the settings to change; ``headers``, when given, replaces the
    whole list, and a value equal to the masked form of the stored value of the same header
    (``••••1234``) keeps the stored secret. Raises ``ConnectorError`` (nothing written).
    """
    validate_connector_changes(connector=connector, name=name, destination=destination)
    with transaction.atomic():
        if destination:
            settings = DestinationSettings.objects.select_for_update().get(connector=connector)
            connector.destination = settings
            for key, value in destination.items():
                if key == "headers":
                    stored = _stored_headers(connector)
                    settings.headers_encrypted = _encrypted_headers(value, stored)
                else:
                    setattr(settings, key, value.strip() if key == "url" else value)
            settings.save()
        if name is not None:
            connector.name = name.strip()
        try:
            with transaction.atomic():
                connector.save(update_fields=["name", "updated_at"])
        except IntegrityError:
            message = f"A connector named “{connector.name}” already exists in this organization."
            raise ConnectorError([InputError(field="name", message=message)]) from None
    return connector


def connector_duplicate(*, connector: Connector, name: str) -> ConnectorWithToken:
    """A new connector with ``name`` and a copy of ``connector``'s schema and settings.

    A duplicated destination keeps its headers (still encrypted). A duplicated source gets a
    new ingest token (returned once), state ``awaiting_samples`` and no records.
    Raises ``ConnectorError`` when the name is invalid or taken.
    """
    _raise_if(_name_errors(organization=connector.organization, name=name, exclude=None))
    fields = [FieldSpec(*spec) for spec in connector.field_specs()]
    with transaction.atomic():
        copy = _insert_connector(
            organization=connector.organization, name=name, direction=connector.direction
        )
        _insert_schema(copy, fields)
        if connector.is_source:
            return ConnectorWithToken(copy, ingest_token=_create_source_settings(copy))
        settings = DestinationSettings.objects.get(connector=connector)
        settings.pk = None
        settings.connector = copy
        settings._state.adding = True
        settings.save()
    return ConnectorWithToken(copy)


def pipelines_using(*, connector: Connector) -> list[str]:
    """Names of the rows that protect ``connector`` from deletion (pipelines, by ``PROTECT``).

    Generic over every ``on_delete=PROTECT`` foreign key to Connector, so the pipelines app
    plugs in by declaring its foreign keys, nothing else.
    """
    names: set[str] = set()
    for relation in Connector._meta.related_objects:
        if relation.on_delete is not PROTECT:
            continue
        rows = relation.related_model._base_manager.filter(**{relation.field.name: connector})
        names.update(str(row) for row in rows)
    return sorted(names)


def _delete_records(connector: Connector) -> None:
    """Delete the connector's records in SQL, without loading them into Python."""
    from ingest.models import Record  # ingest depends on connectors, not the reverse

    records = Record.objects.filter(connector=connector)
    using = router.db_for_write(Record)
    if Collector(using=using, origin=connector).can_fast_delete(records):
        records._raw_delete(using)
        return
    # Some model points at records with cascades or signals: delete in bounded batches.
    while batch := list(records.values_list("pk", flat=True)[:5000]):
        Record.objects.filter(pk__in=batch).delete()


def connector_delete(*, connector: Connector) -> None:
    """Delete a connector with its schema, settings and stored records.

    Raises ``ConnectorInUse`` naming the pipelines that use it (nothing deleted).
    """
    names = pipelines_using(connector=connector)
    if names:
        raise ConnectorInUse(names)
    try:
        with transaction.atomic():
            allow_schema_delete(connector_id=connector.pk, using=router.db_for_write(Connector))
            _delete_records(connector)
            connector.delete()
    except ProtectedError as exc:  # a pipeline was created since the check above
        raise ConnectorInUse([str(row) for row in exc.protected_objects]) from None


def source_rotate_token(*, connector: Connector) -> ConnectorWithToken:
    """Give a source a new ingest token (returned once); the old token stops working at once.

    Raises ``ConnectorError`` for a destination connector.
    """
    if not connector.is_source:
        message = "Only a source connector has an ingest URL to rotate."
        raise ConnectorError([InputError(field="direction", message=message)])
    token, lookup, token_hash = new_secret_token()
    with transaction.atomic():
        settings = SourceSettings.objects.select_for_update().get(connector=connector)
        settings.token_lookup = lookup
        settings.token_hash = token_hash
        settings.token_rotated_at = timezone.now()
        settings.save(update_fields=["token_lookup", "token_hash", "token_rotated_at"])
        connector.source = settings
        connector.save(update_fields=["updated_at"])
    return ConnectorWithToken(connector, ingest_token=token)


__all__ = [
    "ConnectorError",
    "ConnectorInUse",
    "ConnectorWithToken",
    "InputError",
    "connector_create",
    "connector_delete",
    "connector_duplicate",
    "connector_update",
    "pipelines_using",
    "source_rotate_token",
    "validate_connector_changes",
]
