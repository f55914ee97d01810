"""Writes of the connectors app: create, edit, duplicate, delete, rotate the ingest token.

Every service validates its whole input first (``connectors.validation``) and raises
``ConnectorError`` carrying a list of ``InputError`` values, so the API, the admin and the
pages show the same messages. Nothing is written unless the whole input is valid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, router, transaction
from django.db.models import PROTECT, ProtectedError
from django.db.models.deletion import Collector
from django.utils import timezone

from connectors.models import (
    Connector,
    DestinationSettings,
    Direction,
    SchemaField,
    SourceSettings,
    allow_schema_delete,
)
from connectors.schema import FieldSpec
from connectors.validation import (
    DESTINATION_DEFAULTS,
    ConnectorError,
    InputError,
    destination_input_errors,
    encrypted_headers,
    is_masked,
    name_errors,
    raise_if_any,
    schema_errors,
    stored_headers,
    validate_connector_changes,
)
from osmos.tenancy.models import Organization, new_secret_token


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
    ``split_failed_batches``, ``timeout_seconds``, ``rate_limit_per_second``,
    ``max_concurrency``, ``response_format``. A source gets its ingest token, returned
    in plain text only here.
    Raises ``ConnectorError`` (nothing written) on any invalid input, including an unsafe URL.
    """
    errors = name_errors(organization=organization, name=name, exclude=None)
    if direction not in Direction.values:
        message = f"Must be one of {', '.join(Direction.values)}."
        errors.append(InputError(field="direction", message=message))
    errors += schema_errors(fields)
    errors += destination_input_errors(direction=direction, destination=destination, required=True)
    raise_if_any(errors)
    if any(is_masked(h["value"]) for h in (destination or {}).get("headers", [])):
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
            rate_limit_per_second=values["rate_limit_per_second"],
            max_concurrency=values["max_concurrency"],
            response_format=values["response_format"],
        )
        settings.headers_encrypted = encrypted_headers(values["headers"], stored={})
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
                    stored = stored_headers(connector)
                    settings.headers_encrypted = encrypted_headers(value, stored)
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
    raise_if_any(name_errors(organization=connector.organization, name=name, exclude=None))
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
            if connector.is_source:
                # Wait for in-flight ingest transactions (they hold this row) and keep new
                # ones out, so no record commits after its connector is gone.
                SourceSettings.objects.select_for_update().filter(connector=connector).first()
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


# ConnectorError, InputError, validate_connector_changes and DESTINATION_DEFAULTS are
# re-exported: callers of the services catch and show these.
__all__ = [
    "DESTINATION_DEFAULTS",
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
