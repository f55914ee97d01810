"""The field types of a schema (SPEC §3.1) and the per-value helpers every check shares.

One table, ``TYPE_RULES``: what msgspec decodes a value of each type into, which JSON kinds a
value may have, and why a value of an accepted kind was still refused. Read once per field
when a schema is compiled (``connectors.record_validator``) and when a definition is checked
(``connectors.schema``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, NamedTuple

import msgspec


class FieldSpec(NamedTuple):
    """One schema field. A tuple, so ``Connector.field_specs()`` rows compare and hash equal."""

    name: str
    type: str
    nullable: bool


@dataclass(frozen=True, slots=True)
class _TypeRule:
    annotation: Any  # what msgspec decodes a value into
    accepts: frozenset[str]  # the JSON kinds (see json_kind) a value may have
    refusal: str  # why a value of an accepted kind was still refused; {value} is replaced


TYPE_RULES = {
    "string": _TypeRule(str, frozenset({"string"}), "invalid text"),
    "integer": _TypeRule(
        Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)],
        frozenset({"integer"}),
        f"integer must fit in signed 64 bits ({-(2**63)} to {2**63 - 1})",
    ),
    "number": _TypeRule(
        float, frozenset({"integer", "number"}), "number must be finite (this one is too large)"
    ),
    "boolean": _TypeRule(bool, frozenset({"boolean"}), "invalid boolean"),
    "date": _TypeRule(
        date, frozenset({"string"}), "expected an existing date as YYYY-MM-DD, got {value}"
    ),
    "datetime": _TypeRule(
        Annotated[datetime, msgspec.Meta(tz=True)],
        frozenset({"string"}),
        "expected an ISO 8601 datetime with a UTC offset "
        "(like 2024-05-01T12:30:00+02:00), got {value}",
    ),
    "json": _TypeRule(
        dict[str, Any] | list[Any] | str | int | float | bool,  # any JSON value but null
        frozenset({"string", "integer", "number", "boolean", "object", "array"}),
        "contains a number that is out of range (numbers must be finite)",
    ),
}
FIELD_TYPES: tuple[str, ...] = tuple(TYPE_RULES)
VALUE_DECODERS = {name: msgspec.json.Decoder(rule.annotation) for name, rule in TYPE_RULES.items()}
NAIVE_DATETIME = msgspec.json.Decoder(datetime)
_KIND_BY_FIRST_BYTE = {
    ord(first): kind
    for first, kind in zip(
        '"{[tfn', ("string", "object", "array", "boolean", "boolean", "null"), strict=True
    )
}
_NUL_ESCAPE = re.compile(rb"\\u0000")


def json_kind(value: bytes) -> str:
    """The JSON kind of one syntactically valid, stripped JSON value."""
    kind = _KIND_BY_FIRST_BYTE.get(value[0])
    if kind is not None:
        return kind
    return "number" if b"." in value or b"e" in value or b"E" in value else "integer"


def has_nul(data: bytes) -> bool:
    """Whether JSON text holds a real ``\\u0000`` escape (in ``"\\\\u0000"`` it is not one)."""
    if b"\\" not in data:  # a memchr: most bodies have no escapes at all
        return False
    for match in _NUL_ESCAPE.finditer(data):
        before = match.start() - 1
        while before >= 0 and data[before] == 0x5C:  # backslash
            before -= 1
        if (match.start() - 1 - before) % 2 == 0:  # an even run escapes only itself
            return True
    return False


def quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def snippet(value: bytes) -> str:
    text = value.decode()
    return text if len(text) <= 60 else text[:57] + "..."
