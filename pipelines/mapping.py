"""Field mapping: which source field feeds each destination field, checked at save time.

A mapping is ``{destination field: source field}``. Destination fields that are not in it are
not sent (only nullable ones may be left out). The rules, checked by ``mapping_errors``:

- every key is a destination field and every value a source field;
- every non-nullable destination field is mapped;
- types are compatible: the same type; ``integer`` into ``number``; anything into ``json``.
  Every other pair is refused (there is no implicit coercion, SPEC §3.1);
- a nullable source field cannot feed a non-nullable destination field. We refuse this at
  save time instead of letting each null record fail at send time: a pipeline that is
  bound to fail records is a configuration error the person setting it up must see.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from connectors.schema import FieldSpec
from osmos.errors import InputError


def is_compatible(source_type: str, destination_type: str) -> bool:
    """Whether values of ``source_type`` are always valid ``destination_type`` values."""
    if source_type == destination_type or destination_type == "json":
        return True
    return source_type == "integer" and destination_type == "number"


def default_mapping(
    *, source_fields: Sequence[FieldSpec], destination_fields: Sequence[FieldSpec]
) -> dict[str, str]:
    """Each destination field fed by the source field of the same name, when there is one."""
    source_names = {spec.name for spec in source_fields}
    return {spec.name: spec.name for spec in destination_fields if spec.name in source_names}


def mapping_errors(
    *,
    mapping: Any,
    source_fields: Sequence[FieldSpec],
    destination_fields: Sequence[FieldSpec],
) -> list[InputError]:
    """Every problem of ``mapping`` against the two schemas, in destination field order.

    Each error's ``field`` is the destination field it is about, relative to the mapping
    (None: the mapping as a whole).
    """
    if not isinstance(mapping, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in mapping.items()
    ):
        return [InputError(None, "The mapping must be an object of field names to field names.")]
    sources = {spec.name: FieldSpec(*spec) for spec in source_fields}
    destinations = {spec.name: FieldSpec(*spec) for spec in destination_fields}
    errors = [
        InputError(name, f"{name!r} is not a field of the destination.")
        for name in mapping
        if name not in destinations
    ]
    for name, destination in destinations.items():
        source_name = mapping.get(name)
        if source_name is None:
            if not destination.nullable:
                errors.append(
                    InputError(name, f"The required destination field {name!r} is not mapped.")
                )
            continue
        source = sources.get(source_name)
        if source is None:
            errors.append(InputError(name, f"{source_name!r} is not a field of the source."))
        elif not is_compatible(source.type, destination.type):
            errors.append(
                InputError(
                    name,
                    f"The source field {source_name!r} ({source.type}) cannot feed "
                    f"{name!r} ({destination.type}).",
                )
            )
        elif source.nullable and not destination.nullable:
            errors.append(
                InputError(
                    name,
                    f"The source field {source_name!r} may be null or missing but {name!r} "
                    "is required.",
                )
            )
    return errors


def map_record(record: Mapping[str, Any], mapping: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The destination record: each mapped field copied when the source record has it.

    ``mapping`` is ``mapping.items()`` (pass it once, precomputed, in hot loops). A missing
    source value stays missing, so the destination schema decides whether that is allowed.
    """
    return {dest: record[src] for dest, src in mapping if src in record}


def is_statically_safe(
    *,
    mapping: Mapping[str, str],
    source_fields: Sequence[FieldSpec],
    destination_fields: Sequence[FieldSpec],
) -> bool:
    """Whether every record valid for the source schema, once mapped, is valid for the
    destination schema, so that checking mapped records one by one can be skipped.

    True when every mapped destination field is fed by a source field of a compatible type
    (``is_compatible``) that is non-nullable or feeds a nullable field, and every unmapped
    destination field is nullable. A mapped record holds only destination fields (mapping
    copies nothing else), a missing source value stays missing (allowed: the destination
    field is then nullable) and a value keeps its JSON type, which the destination accepts.
    Relies on stored records having passed the (immutable) source schema at ingest.
    """
    sources = {source.name: source for source in (FieldSpec(*spec) for spec in source_fields)}
    for destination in (FieldSpec(*spec) for spec in destination_fields):
        source_name = mapping.get(destination.name)
        if source_name is None:
            if not destination.nullable:
                return False
            continue
        source = sources.get(source_name)
        if source is None or not is_compatible(source.type, destination.type):
            return False
        if source.nullable and not destination.nullable:
            return False
    destination_names = {spec[0] for spec in destination_fields}
    return all(name in destination_names for name in mapping)
