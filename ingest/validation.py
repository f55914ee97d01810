"""Checking a request's records against its source's schema (SPEC §4), for
``ingest.services``: the compiled validator once per process, the domain errors of a body
that is malformed, too large or holds invalid records."""

from __future__ import annotations

import uuid
from functools import lru_cache

from django.conf import settings

from connectors.body_split import split_body
from connectors.models import Connector, SchemaField
from connectors.schema import (
    CompiledSchema,
    MalformedBody,
    RecordError,
    TooManyRecords,
    compile_schema,
)
from ingest import body as ingest_body
from osmos.errors import InputError, InvalidInput, Malformed, Missing, TooLarge

MAX_ERRORS_LISTED = 100


def connector_deleted() -> Missing:
    return Missing("Unknown ingest URL (the connector was deleted).")


def valid_records(connector: Connector, data: bytes, kind: ingest_body.BodyKind) -> list[bytes]:
    """The records of ``data`` as JSON bytes, in body order; raises a domain error."""
    return validated(schema_of(connector), data, kind)


def schema_of(connector: Connector) -> CompiledSchema:
    schema = _compiled_schema(connector.pk)
    if schema is None:  # every connector has a field: it was deleted since its token was looked up
        raise connector_deleted()
    return schema


@lru_cache(maxsize=4096)
def _compiled_schema(connector_id: uuid.UUID) -> CompiledSchema | None:
    """A connector's compiled validator, once per process (a saved schema never changes;
    checking its definition again cost ~5% of the web process's CPU per small request)."""
    fields = _field_specs(connector_id)
    return compile_schema(fields=fields) if fields else None


def validated(schema: CompiledSchema, data: bytes, kind: ingest_body.BodyKind) -> list[bytes]:
    """``valid_records`` with the schema at hand (uses no database)."""
    max_records = settings.INGEST_MAX_RECORDS
    try:
        result = schema.validate_body(
            data,
            kind=ingest_body.validator_kind(kind, data),
            max_errors=MAX_ERRORS_LISTED,
            max_records=max_records,
        )
    except MalformedBody as exc:
        raise Malformed(f"Malformed body: {exc.message}.") from None
    except TooManyRecords as exc:
        raise too_many(exc.count) from None
    if result.error_total:
        raise invalid_records(result.errors, result.error_total)
    return result.records


# Bodies from this size (decoded) on are validated while PostgreSQL parses their records:
# the records are split from the body (a syntax check only), sent with COPY, and validated
# while the server turns them into jsonb; the transaction ends only if they are all valid.
# Validation is half of the web process's CPU for large bodies and the server's parsing most
# of the database's, so overlapping them is what brought bench-ingest near binary COPY.
OVERLAPPED_BODY_BYTES = 256 * 1024


def split_records(data: bytes, kind: ingest_body.BodyKind) -> list[bytes]:
    """The raw records of ``data`` (not validated); raises ``Malformed`` or ``TooLarge``
    exactly like ``valid_records``."""
    try:
        records, _ = split_body(data, kind=ingest_body.validator_kind(kind, data))
    except MalformedBody as exc:
        raise Malformed(f"Malformed body: {exc.message}.") from None
    if len(records) > settings.INGEST_MAX_RECORDS:
        raise too_many(len(records))
    return records


def too_many(count: int) -> TooLarge:
    max_records = settings.INGEST_MAX_RECORDS
    return TooLarge(
        f"The body holds {count} records; at most {max_records} are accepted per "
        "request. Split it into several requests.",
        max_records=max_records,
    )


@lru_cache(maxsize=4096)
def _field_specs(connector_id: uuid.UUID) -> tuple[tuple[str, str, bool], ...]:
    """A connector's schema, read once per process: a saved schema never changes (and an
    empty answer means the connector was deleted, which is final too)."""
    return tuple(
        SchemaField.objects.filter(connector_id=connector_id)
        .order_by("position")
        .values_list("name", "type", "nullable")
    )


def invalid_records(errors: list[RecordError], error_total: int) -> InvalidInput:
    return InvalidInput(
        [
            InputError(field=error.field, message=error.message, index=error.index)
            for error in errors
        ],
        f"{error_total} validation error(s), first in record {errors[0].index}: "
        f"{errors[0].message}. Nothing was stored; fix the records and send the request again.",
        error_total=error_total,
        accepted=0,
    )
