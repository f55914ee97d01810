"""Record type rules (SPEC §3.1) and the compiled validator used by ingest and delivery.

A schema is an ordered list of fields ``(name, type, nullable)``. A record is valid when:

- it is a JSON object whose keys are all schema field names (an unknown key rejects it);
- every non-nullable field is present and not ``null`` (a nullable one may be missing or null);
- every value has its field's type, with no coercion: ``string``; ``integer`` (a JSON number
  written without fraction or exponent, so ``3.0`` is not one); ``number`` (any JSON number,
  ``3`` included); ``boolean`` (``true``/``false`` only, never ``1``); ``date`` (an existing
  calendar day as ``YYYY-MM-DD``); ``datetime`` (RFC 3339 / ISO 8601 with a UTC offset such as
  ``Z`` or ``+02:00``; naive values are rejected); ``json`` (any JSON value).

Field names may hold any text but control characters (U+0000 to U+001F). Schemas with a name
containing ``"`` or ``\\`` work, but slowly: msgspec cannot map a Struct field to such a name.

Rules we added, because records are stored in PostgreSQL ``jsonb`` and sent on as JSON:

- integers must fit in signed 64 bits; numbers must be finite 64-bit floats (``1e400`` is
  refused, also inside ``json`` values);
- no text may contain U+0000 (``\\u0000``), in ``string`` fields or anywhere inside ``json``
  values, keys included: ``jsonb`` cannot store it;
- a body must be UTF-8 without unpaired surrogate escapes (``"\\ud800"``), else it is malformed;
- nesting deeper than the decoder's recursion limit (about 1,000 levels, less the caller's own
  stack depth) is refused cleanly, never a crash.

Where: the field types in ``connectors.field_types``, splitting a body in
``connectors.body_split``, the compiled validator in ``connectors.record_validator``; this
module checks schema definitions and compiles them (its names are the public face of all four).

How it is fast: each schema is compiled once into a msgspec ``Struct`` type. A body is split
into raw record slices (one C call that only checks syntax), then decoded whole into
``list[Struct]`` (one more call). Only when that fails, or when the body holds a real ``\\u0000``
escape, does a slow path look at records one by one to collect every error. Valid records are
returned as their own bytes from the body (checked JSON, whitespace as sent), so every value is
kept exactly as sent: no number is reformatted and no missing field is invented.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from connectors.body_split import BodyKind, MalformedBody
from connectors.field_types import FIELD_TYPES, FieldSpec, quote
from connectors.record_validator import BodyResult, CompiledSchema, RecordError, TooManyRecords

MAX_NAME_LENGTH = 255
_CONTROL = re.compile("[\x00-\x1f]")

__all__ = [
    "FIELD_TYPES",
    "MAX_NAME_LENGTH",
    "BodyKind",
    "BodyResult",
    "CompiledSchema",
    "FieldSpec",
    "InvalidSchema",
    "MalformedBody",
    "RecordError",
    "SchemaDefinitionError",
    "TooManyRecords",
    "compile_schema",
    "schema_definition_errors",
]


@dataclass(frozen=True, slots=True)
class SchemaDefinitionError:
    """A problem in a schema definition: at field ``index`` (None: the whole schema) and key."""

    index: int | None
    field: str | None
    message: str


class InvalidSchema(ValueError):
    """``compile_schema`` was given a definition that ``schema_definition_errors`` refuses."""

    def __init__(self, errors: list[SchemaDefinitionError]):
        super().__init__("; ".join(error.message for error in errors))
        self.errors = errors


# --- schema definitions -----------------------------------------------------------------------


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return "name must be a string"
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        return f"name must be 1 to {MAX_NAME_LENGTH} characters long"
    if _CONTROL.search(name):
        return "name must not contain control characters (U+0000 to U+001F)"
    try:
        name.encode()
    except UnicodeEncodeError:
        return "name must be valid Unicode text (no unpaired surrogates)"
    return None


def _type_problem(type_: object) -> str | None:
    if isinstance(type_, str) and type_ in FIELD_TYPES:
        return None
    return f"type must be one of {', '.join(FIELD_TYPES)}"


def _nullable_problem(nullable: object) -> str | None:
    return None if isinstance(nullable, bool) else "nullable must be true or false"


_KEY_CHECKS = {"name": _name_problem, "type": _type_problem, "nullable": _nullable_problem}


def _field_definition_errors(
    index: int, item: object, seen: dict[str, int]
) -> list[SchemaDefinitionError]:
    if isinstance(item, tuple) and len(item) == len(FieldSpec._fields):
        item = FieldSpec(*item)._asdict()
    if not isinstance(item, Mapping):
        message = "each field must be an object with name, type and nullable"
        return [SchemaDefinitionError(index, None, message)]
    errors = [
        SchemaDefinitionError(index, str(key), f"unknown key {quote(str(key))}")
        for key in item
        if key not in _KEY_CHECKS
    ]
    for key, check in _KEY_CHECKS.items():
        problem = check(item[key]) if key in item else f"{key} is required"
        if problem is None and key == "name" and seen.setdefault(item[key], index) != index:
            problem = f"name {quote(item[key])} is already used at index {seen[item[key]]}"
        if problem is not None:
            errors.append(SchemaDefinitionError(index, key, problem))
    return errors


def schema_definition_errors(
    *, fields: Sequence[Mapping[str, Any] | FieldSpec]
) -> list[SchemaDefinitionError]:
    """Every problem in a schema definition; an empty list means it is valid.

    Checks: at least one field; each a mapping (or ``FieldSpec`` / 3-tuple) with exactly the
    keys ``name`` (1 to 255 characters, no control characters, unique), ``type`` (one of
    ``FIELD_TYPES``) and ``nullable`` (a bool; required, never defaulted).
    """
    if isinstance(fields, str | bytes) or not isinstance(fields, Sequence):
        return [SchemaDefinitionError(None, None, "a schema must be a list of fields")]
    if not fields:
        return [SchemaDefinitionError(None, None, "a schema needs at least one field")]
    seen: dict[str, int] = {}
    return [
        error
        for index, item in enumerate(fields)
        for error in _field_definition_errors(index, item, seen)
    ]


# --- compiled schemas -------------------------------------------------------------------------


def compile_schema(*, fields: Sequence[Mapping[str, Any] | FieldSpec]) -> CompiledSchema:
    """The compiled validator of a schema; equal fields give the same (cached) object.

    Raises ``InvalidSchema`` when ``schema_definition_errors`` finds a problem.
    """
    errors = schema_definition_errors(fields=fields)
    if errors:
        raise InvalidSchema(errors)
    specs = tuple(
        FieldSpec(item["name"], item["type"], item["nullable"])
        if isinstance(item, Mapping)
        else FieldSpec(*item)
        for item in fields
    )
    return _compile(specs)


@lru_cache(maxsize=512)
def _compile(specs: tuple[FieldSpec, ...]) -> CompiledSchema:
    return CompiledSchema(specs)
