"""Writes of the connectors app: create, edit, duplicate, delete, rotate the ingest token.

Every service validates its whole input first (``connectors.validation``) and raises
``osmos.errors.InvalidInput`` carrying a list of ``InputError`` values, so the API, the admin
and the pages show the same messages. Nothing is written unless the whole input is valid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, router, transaction
from django.db.models import PROTECT, ProtectedError

from connectors import credentials, hooks
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
    destination_input_errors,
    destination_shape_errors,
    encrypted_headers,
    is_masked,
    name_errors,
    schema_errors,
    stored_headers,
    url_warnings,
    validate_connector_changes,
)
from osmos.errors import Conflict, InputError, InvalidInput, raise_if_any
from osmos.tenancy.models import Organization, new_secret_token


class ConnectorInUse(Conflict):
    """The connector cannot be deleted: pipelines use it (``pipelines``: their names, sorted)."""

    def __init__(self, pipeline_names: Sequence[str]):
        self.pipeline_names = sorted(pipeline_names)
        names = ", ".join(self.pipeline_names)
        noun = "pipeline" if len(self.pipeline_names) == 1 else "pipelines"
        super().__init__(
            f"This connector is used by the {noun} {names}; delete or change "
            f"{'it' if len(self.pipeline_names) == 1 else 'them'} first.",
            pipelines=self.pipeline_names,
        )


@dataclass(frozen=True, slots=True)
class ConnectorWithToken:
    """A connector and the plain secrets a write just issued: a source's ingest token or
    sender-verification secret, a destination's signing secret.

    Show them once, then forget them (the token is stored hashed, the secrets encrypted).
    ``warnings``: what was saved but is worth saying (a destination host that does not
    resolve today, SPEC §3.2).
    """

    connector: Connector
    ingest_token: str | None = None
    verification_secret: str | None = None
    signing_secret: str | None = None
    warnings: tuple[str, ...] = ()


# --- services -----------------------------------------------------------------------------------


def _create_source_settings(
    connector: Connector, verification: Mapping[str, Any] | None = None
) -> ConnectorWithToken:
    token, lookup, token_hash = new_secret_token()
    source = SourceSettings(connector=connector, token_lookup=lookup, token_hash=token_hash)
    secret = credentials.apply_verification(source, verification) if verification else None
    source.save()
    return ConnectorWithToken(connector, ingest_token=token, verification_secret=secret)


def _source_input_errors(*, direction: str, source: object) -> list[InputError]:
    """Problems with a ``source`` input ``{"verification": {...}}`` (a source only)."""
    if source is None:
        return []
    if direction != Direction.SOURCE:
        return [InputError(field="source", message="A destination has no source settings.")]
    if not isinstance(source, Mapping) or set(source) - {"verification"}:
        message = "Source settings are an object with the key verification."
        return [InputError(field="source", message=message)]
    if "verification" not in source:
        return []
    return credentials.verification_errors(source["verification"])


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


def _insert_connector(
    *,
    organization: Organization,
    name: str,
    direction: str,
    duplicated_from: Connector | None = None,
) -> Connector:
    try:
        with transaction.atomic():
            return Connector.objects.create(
                organization=organization,
                name=name.strip(),
                direction=direction,
                duplicated_from=duplicated_from,
            )
    except IntegrityError:  # another request took the name between the check and the insert
        message = f"A connector named “{name.strip()}” already exists in this organization."
        raise InvalidInput([InputError(field="name", message=message)]) from None


def connector_create(
    *,
    organization: Organization,
    name: str,
    direction: str,
    fields: Sequence[Mapping[str, Any] | FieldSpec],
    destination: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
) -> ConnectorWithToken:
    """Create a connector with its immutable schema and the settings of its direction.

    ``fields``: the schema, a list of ``{"name", "type", "nullable"}`` (or ``FieldSpec``).
    ``destination`` (for a destination only): ``url`` (required) and optionally ``method``,
    ``headers`` (a list of ``{"name", "value"}``), ``write_mode``, ``batch_size``,
    ``split_failed_batches``, ``timeout_seconds``, ``rate_limit_per_second``,
    ``max_concurrency``, ``response_format``, ``signing`` (``{"enabled"}``: the signing
    secret is returned once). ``source`` (for a source only): optionally ``verification``
    (``{"scheme", "header", "secret"}``, see ``connectors.credentials``). A source gets its
    ingest token, returned in plain text only here.
    Raises ``InvalidInput`` (nothing written) on any invalid input, including an unsafe URL.
    """
    errors = name_errors(organization=organization, name=name, exclude=None)
    if direction not in Direction.values:
        message = f"Must be one of {', '.join(Direction.values)}."
        errors.append(InputError(field="direction", message=message))
    errors += schema_errors(fields)
    warnings: list[str] = []
    errors += destination_input_errors(
        direction=direction, destination=destination, required=True, warnings=warnings
    )
    if not errors and direction == Direction.DESTINATION:
        errors += destination_shape_errors(destination=destination, fields=fields)
    errors += _source_input_errors(direction=direction, source=source)
    raise_if_any(errors)
    if any(is_masked(h["value"]) for h in (destination or {}).get("headers", [])):
        message = "A new header cannot have a masked value; enter the full value."
        raise InvalidInput([InputError(field="destination.headers", message=message)])
    with transaction.atomic():
        connector = _insert_connector(organization=organization, name=name, direction=direction)
        _insert_schema(connector, fields)
        if direction == Direction.SOURCE:
            return _create_source_settings(connector, (source or {}).get("verification"))
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
            body_template=values["body_template"],
        )
        settings.headers_encrypted = encrypted_headers(values["headers"], stored={})
        signing_secret = credentials.apply_signing(
            settings, bool(values.get("signing", {}).get("enabled"))
        )
        settings.save()
    return ConnectorWithToken(connector, signing_secret=signing_secret, warnings=tuple(warnings))


def connector_update(
    *,
    connector: Connector,
    name: str | None = None,
    destination: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
) -> ConnectorWithToken:
    """Rename a connector and/or change some destination or source settings. Never the schema.

    ``destination`` holds only the settings to change; ``headers``, when given, replaces the
    whole list, and a value equal to the masked form of the stored value of the same header
    (``••••1234``) keeps the stored secret, except when ``url`` moves to another host: then
    every header value must be entered again and the signing secret is replaced (SPEC §3.2).
    ``source`` may hold ``verification``. Returns the connector with the secrets issued (to
    show once). Raises ``InvalidInput`` (nothing written).
    """
    warnings: list[str] = []
    validate_connector_changes(
        connector=connector, name=name, destination=destination, warnings=warnings
    )
    raise_if_any(_source_input_errors(direction=connector.direction, source=source))
    issued: dict[str, Any] = {"warnings": tuple(warnings)}
    with transaction.atomic():
        if destination:
            settings = DestinationSettings.objects.select_for_update().get(connector=connector)
            connector.destination = settings
            raise_if_any(credentials.moved_host_errors(stored=settings, destination=destination))
            if credentials.host_changed(stored_url=settings.url, new_url=destination.get("url")):
                issued["signing_secret"] = credentials.reset_signing_secret(settings)
            for key, value in destination.items():
                if key == "headers":
                    stored = stored_headers(connector)
                    settings.headers_encrypted = encrypted_headers(value, stored)
                elif key == "signing":
                    secret = credentials.apply_signing(settings, value["enabled"])
                    issued["signing_secret"] = secret or issued.get("signing_secret")
                else:
                    setattr(settings, key, value.strip() if key == "url" else value)
            settings.save()
        if source and "verification" in source:
            secret = credentials.source_set_verification(
                connector=connector, verification=source["verification"]
            )
            issued["verification_secret"] = secret
        if name is not None:
            connector.name = name.strip()
        try:
            with transaction.atomic():
                connector.save(update_fields=["name", "updated_at"])
        except IntegrityError:
            message = f"A connector named “{connector.name}” already exists in this organization."
            raise InvalidInput([InputError(field="name", message=message)]) from None
    return ConnectorWithToken(connector, **issued)


def connector_duplicate(
    *,
    connector: Connector,
    name: str,
    fields: Sequence[Mapping[str, Any] | FieldSpec] | None = None,
) -> ConnectorWithToken:
    """A new connector with ``name``, ``connector``'s settings, and its schema or ``fields``.

    Duplicating is how a schema changes (SPEC §3.4): ``fields`` (same rules as
    ``connector_create``) is the copy's schema; None copies the original's. The copy
    remembers its original (``duplicated_from``), whose pipelines can then be pointed at it
    (``pipelines.services.pipeline_update``). A duplicated destination keeps its headers
    (still encrypted) and gets its own signing secret when signing is on. A duplicated source
    gets a new ingest token (returned once), state ``awaiting_samples``, no records and no
    sender verification: it needs its 50 samples and to be saved before a pipeline can use it.
    Raises ``InvalidInput`` (nothing written) when the name or the schema is invalid.
    """
    errors = name_errors(organization=connector.organization, name=name, exclude=None)
    if fields is not None:
        errors += schema_errors(fields)
        if not errors and not connector.is_source:
            # The URL's placeholders must name fields of the copy's schema (SPEC §3.2).
            stored = connector.destination
            shape = {k: getattr(stored, k) for k in ("url", "write_mode", "body_template")}
            errors += destination_shape_errors(destination=shape, fields=fields)
    raise_if_any(errors)
    if fields is None:
        fields = [FieldSpec(*spec) for spec in connector.field_specs()]
    with transaction.atomic():
        copy = _insert_connector(
            organization=connector.organization,
            name=name,
            direction=connector.direction,
            duplicated_from=connector,
        )
        _insert_schema(copy, fields)
        if connector.is_source:
            # The copy gets its own URL and no verification: its senders are set up anew.
            return _create_source_settings(copy)
        settings = DestinationSettings.objects.get(connector=connector)
        settings.pk = None
        settings.connector = copy
        settings._state.adding = True
        # A copy signs with its own secret: one receiver's secret is never another's.
        enabled = settings.signing_enabled
        settings.signing_enabled = False
        signing_secret = credentials.apply_signing(settings, enabled)
        settings.save()
    warnings = tuple(url_warnings(settings.url))
    return ConnectorWithToken(copy, signing_secret=signing_secret, warnings=warnings)


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
            hooks.records_delete(connector=connector)
            connector.delete()
    except ProtectedError as exc:  # a pipeline was created since the check above
        raise ConnectorInUse([str(row) for row in exc.protected_objects]) from None


def source_rotate_token(
    *, connector: Connector, grace_hours: int | None = None
) -> ConnectorWithToken:
    """Give a source a new ingest token (returned once). The old token stops working at once,
    or after ``grace_hours`` (0-168). Raises ``InvalidInput`` for a destination connector or
    an invalid ``grace_hours``.
    """
    token = credentials.source_rotate_token(connector=connector, grace_hours=grace_hours)
    return ConnectorWithToken(connector, ingest_token=token)


def destination_rotate_signing_secret(*, connector: Connector) -> ConnectorWithToken:
    """A new signing secret (returned once); the previous one signs too for 24 hours."""
    secret = credentials.destination_rotate_signing_secret(connector=connector)
    return ConnectorWithToken(connector, signing_secret=secret)


# validate_connector_changes and DESTINATION_DEFAULTS are re-exported: the forms use them.
__all__ = [
    "DESTINATION_DEFAULTS",
    "ConnectorInUse",
    "ConnectorWithToken",
    "connector_create",
    "connector_delete",
    "connector_duplicate",
    "connector_update",
    "destination_rotate_signing_secret",
    "pipelines_using",
    "source_rotate_token",
    "validate_connector_changes",
]
