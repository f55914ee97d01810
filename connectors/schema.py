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

How it is fast: each schema is compiled once into a msgspec ``Struct`` type. A body is split
into raw record slices (one C call that only checks syntax), then decoded whole into
``list[Struct]`` (one more call). Only when that fails, or when the body holds a real ``\\u0000``
escape, does a slow path look at records one by one to collect every error. Valid records are
returned as their own bytes from the body (checked JSON, whitespace as sent), so every value is
kept exactly as sent: no number is reformatted and no missing field is invented.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal, NamedTuple

import msgspec
import orjson

BodyKind = Literal["array", "object", "ndjson", "auto"]
_CHUNK = 256  # records tried together after an invalid one
_FAILED_AT = re.compile(r"`\$\[(\d+)\]")  # where msgspec says a list[Struct] failed: `$[12].name`
MAX_NAME_LENGTH = 255


class FieldSpec(NamedTuple):
    """One schema field. A tuple, so ``Connector.field_specs()`` rows compare and hash equal."""

    name: str
    type: str
    nullable: bool


@dataclass(frozen=True, slots=True)
class SchemaDefinitionError:
    """A problem in a schema definition: at field ``index`` (None: the whole schema) and key."""

    index: int | None
    field: str | None
    message: str


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why record ``index`` was refused; ``field`` is None when it is about the whole record."""

    index: int
    field: str | None
    message: str


@dataclass(slots=True)
class BodyResult:
    """Valid records (JSON bytes, in body order), the first errors, and the count of all."""

    records: list[bytes] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    error_total: int = 0


class MalformedBody(ValueError):
    """The body is not JSON, or not one object / an array / NDJSON (ingest answers 400)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class TooManyRecords(ValueError):
    """The body holds more records than the caller allows."""

    def __init__(self, count: int):
        super().__init__(f"the body holds {count} records, more than allowed")
        self.count = count


class InvalidSchema(ValueError):
    """``compile_schema`` was given a definition that ``schema_definition_errors`` refuses."""

    def __init__(self, errors: list[SchemaDefinitionError]):
        super().__init__("; ".join(error.message for error in errors))
        self.errors = errors


# --- the type table: looked up once per field, when a schema is compiled -------------------------


@dataclass(frozen=True, slots=True)
class _TypeRule:
    annotation: Any  # what msgspec decodes a value into
    accepts: frozenset[str]  # the JSON kinds (see _json_kind) a value may have
    refusal: str  # why a value of an accepted kind was still refused; {value} is replaced


_TYPE_RULES = {
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
FIELD_TYPES: tuple[str, ...] = tuple(_TYPE_RULES)
_VALUE_DECODERS = {
    name: msgspec.json.Decoder(rule.annotation) for name, rule in _TYPE_RULES.items()
}
_NAIVE_DATETIME = msgspec.json.Decoder(datetime)
_KIND_BY_FIRST_BYTE = {
    ord(first): kind
    for first, kind in zip(
        '"{[tfn', ("string", "object", "array", "boolean", "boolean", "null"), strict=True
    )
}
_NUL_ESCAPE = re.compile(rb"\\u0000")
_CONTROL = re.compile("[\x00-\x1f]")


def _json_kind(value: bytes) -> str:
    """The JSON kind of one syntactically valid, stripped JSON value."""
    kind = _KIND_BY_FIRST_BYTE.get(value[0])
    if kind is not None:
        return kind
    return "number" if b"." in value or b"e" in value or b"E" in value else "integer"


def _has_nul(data: bytes) -> bool:
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


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _snippet(value: bytes) -> str:
    text = value.decode()
    return text if len(text) <= 60 else text[:57] + "..."


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
        SchemaDefinitionError(index, str(key), f"unknown key {_quote(str(key))}")
        for key in item
        if key not in _KEY_CHECKS
    ]
    for key, check in _KEY_CHECKS.items():
        problem = check(item[key]) if key in item else f"{key} is required"
        if problem is None and key == "name" and seen.setdefault(item[key], index) != index:
            problem = f"name {_quote(item[key])} is already used at index {seen[item[key]]}"
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


def _struct_decoders(
    fields: tuple[FieldSpec, ...],
) -> tuple[msgspec.json.Decoder, msgspec.json.Decoder] | tuple[None, None]:
    """Decoders of one record and of a list of records, as a msgspec Struct (the fast path).

    (None, None) when a name holds ``"`` or ``\\``, which msgspec cannot rename a field to: every
    record of such a schema takes the field-by-field path.
    """
    if any('"' in spec.name or "\\" in spec.name for spec in fields):
        return None, None
    # Attributes are f0, f1, …, renamed to the real names (which need not be identifiers).
    attributes = [
        (f"f{i}", _TYPE_RULES[spec.type].annotation | None, None)
        if spec.nullable
        else (f"f{i}", _TYPE_RULES[spec.type].annotation)
        for i, spec in enumerate(fields)
    ]
    record = msgspec.defstruct(
        "Record",
        attributes,
        rename={f"f{i}": spec.name for i, spec in enumerate(fields)},
        forbid_unknown_fields=True,
        kw_only=True,
        gc=False,  # decoded records hold no cycles: keep them out of the garbage collector
    )
    return msgspec.json.Decoder(record), msgspec.json.Decoder(list[record])


class _FieldCheck:
    """The slow-path check of one field: says exactly what is wrong with a value."""

    __slots__ = ("decoder", "label", "name", "nullable", "rule", "type")

    def __init__(self, spec: FieldSpec):
        self.name, self.type, self.nullable = spec
        self.rule = _TYPE_RULES[spec.type]
        self.decoder = _VALUE_DECODERS[spec.type]
        self.label = f"field {_quote(spec.name)}"

    def problem(self, value: bytes | None) -> str | None:
        """Why ``value`` (raw JSON; None when missing) breaks this field, or None if it does not."""
        if value is None:
            return None if self.nullable else f"{self.label} is required"
        kind = _json_kind(value)
        if kind == "null":
            return None if self.nullable else f"{self.label} must not be null"
        if kind not in self.rule.accepts:
            got = f"number {_snippet(value)}" if kind == "number" else kind
            return f"{self.label}: expected {self.type}, got {got}"
        try:
            self.decoder.decode(value)
        except msgspec.DecodeError:
            return f"{self.label}: {self._refusal(value)}"
        except RecursionError:
            return f"{self.label}: value is nested too deeply"
        if _has_nul(value):
            return f"{self.label}: text must not contain the NUL character (\\u0000)"
        return None

    def _refusal(self, value: bytes) -> str:
        if self.type == "datetime":
            try:
                _NAIVE_DATETIME.decode(value)
                return "datetime must include a UTC offset"
            except msgspec.DecodeError:
                pass
        return self.rule.refusal.format(value=_snippet(value))


class CompiledSchema:
    """A schema compiled into msgspec decoders. Immutable; safe to share between threads."""

    def __init__(self, fields: tuple[FieldSpec, ...]):
        self.fields = fields
        self._names = frozenset(spec.name for spec in fields)
        self._checks = tuple(_FieldCheck(spec) for spec in fields)
        self._number_names = tuple(spec.name for spec in fields if spec.type == "number")
        self._record_decoder, self._list_decoder = _struct_decoders(fields)

    def __repr__(self) -> str:
        return f"<CompiledSchema {[tuple(spec) for spec in self.fields]}>"

    def validate_body(
        self,
        body: bytes,
        *,
        kind: BodyKind,
        max_errors: int | None = 100,
        max_records: int | None = None,
    ) -> BodyResult:
        """Validate a request body: one object, an array of objects, or NDJSON ("auto": sniffed).

        Returns valid records and errors in body order; at most ``max_errors`` errors are
        listed (None: all), ``error_total`` counts all. Record indexes count from 0 (NDJSON:
        among non-blank lines). Raises ``MalformedBody`` (not UTF-8 or JSON, wrong shape, an
        NDJSON line that is not JSON, named by its 1-based line number) and ``TooManyRecords``
        beyond ``max_records``.
        """
        raws, as_array = _split_body(body, kind=kind)
        if max_records is not None and len(raws) > max_records:
            raise TooManyRecords(len(raws))
        return self._validate(raws, as_array=as_array, max_errors=max_errors)

    def validate_python(self, records: Iterable[dict[str, Any]]) -> list[RecordError]:
        """Every error in records of plain JSON types (dates and datetimes as strings).

        The records are encoded to JSON and checked by exactly the rules of ``validate_body``;
        a record too deep to encode or holding an unpaired surrogate is an error too. Raises
        ``TypeError`` for a value JSON cannot represent. A NaN or infinite float is refused in a
        ``number`` field; inside a ``json`` value the encoder would write it as null (JSON has
        no such values, so records loaded from the database never hold one).
        """
        records = list(records)
        found, raws, positions = [], [], []
        for index, record in enumerate(records):
            try:
                raws.append(msgspec.json.encode(record))
                positions.append(index)
            except RecursionError:
                found.append(RecordError(index, None, "record is nested too deeply"))
            except UnicodeEncodeError:
                found.append(
                    RecordError(index, None, "record holds text that is not valid Unicode")
                )
        checked = self._validate(raws, as_array=b"[" + b",".join(raws) + b"]", max_errors=None)
        found += [RecordError(positions[e.index], e.field, e.message) for e in checked.errors]
        non_finite = [
            RecordError(index, name, f"field {_quote(name)}: number must be finite")
            for index, record in enumerate(records)
            for name in self._number_names
            if isinstance(record, dict)
            and isinstance(value := record.get(name), float)
            and not math.isfinite(value)
        ]
        # The encoder wrote those floats as null: report them as what they are instead.
        replaced = {(error.index, error.field) for error in non_finite}
        found = [error for error in found if (error.index, error.field) not in replaced]
        return sorted(found + non_finite, key=lambda error: error.index)

    def _validate(
        self, raws: list[bytes], *, as_array: bytes, max_errors: int | None
    ) -> BodyResult:
        """Check ``raws`` (also joined as one JSON array): a single decode call when all is well.

        Otherwise the records after the first invalid one are tried again in chunks, and only
        records not known to be valid are looked at one by one.
        """
        result = BodyResult()
        position, end, window = 0, len(raws), as_array
        while position < len(raws):
            valid = self._valid_prefix(window)
            if valid is None:
                result.records.extend(raws[position:end])
                position = end
            else:
                result.records.extend(raws[position : position + valid])
                # Not known why (a NUL?): look at a chunk one by one, else just the failed record.
                stop = min(end, position + _CHUNK) if valid == 0 else position + valid + 1
                for index in range(position + valid, stop):
                    self._check_record(index, raws[index], result, max_errors=max_errors)
                position = stop
            end = min(position + _CHUNK, len(raws))
            window = b"[" + b",".join(raws[position:end]) + b"]"
        return result

    def _valid_prefix(self, window: bytes) -> int | None:
        """How many leading records of a JSON array are known valid; None when all are."""
        if self._list_decoder is None or _has_nul(window):
            return 0
        try:
            self._list_decoder.decode(window)
        except msgspec.ValidationError as exc:
            failed_at = _FAILED_AT.match(str(exc).rpartition(" - at ")[2])
            return int(failed_at.group(1)) if failed_at else 0
        except (msgspec.DecodeError, RecursionError):
            return 0
        return None

    def _check_record(
        self, index: int, raw: bytes, result: BodyResult, *, max_errors: int | None
    ) -> None:
        errors = self._record_errors(index, raw)
        if not errors:
            result.records.append(raw)
            return
        result.error_total += len(errors)
        room = len(errors) if max_errors is None else max(0, max_errors - len(result.errors))
        result.errors.extend(errors[:room])

    def _record_errors(self, index: int, raw: bytes) -> list[RecordError]:
        """Every error of one record, field by field (the slow path)."""
        failure = None
        try:
            if self._record_decoder is not None:
                self._record_decoder.decode(raw)
                if not _has_nul(raw):
                    return []
                failure = "record contains the NUL character"
        except (msgspec.DecodeError, RecursionError) as exc:
            failure = f"record is invalid: {exc}"
        try:
            values = _RAW_OBJECT.decode(raw)
        except msgspec.DecodeError:
            return [
                RecordError(index, None, f"record must be a JSON object, got {_json_kind(raw)}")
            ]
        except RecursionError:
            return [RecordError(index, None, "record is nested too deeply")]
        errors = []
        for check in self._checks:
            value = values.get(check.name)
            problem = check.problem(None if value is None else bytes(value))
            if problem is not None:
                errors.append(RecordError(index, check.name, problem))
        errors.extend(
            RecordError(index, key, f"field {_quote(key)} is not in the schema")
            for key in values
            if key not in self._names
        )
        if failure is not None and not errors:  # never accept what failed above
            errors.append(RecordError(index, None, failure))
        return errors


# --- splitting a body into raw records ----------------------------------------------------------

_RAW_ONE = msgspec.json.Decoder(msgspec.Raw)
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_RAW_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_LINE_SPACE = b" \t\r"
_STARTS_ARRAY = re.compile(rb"[ \t\r\n]*\[")


def _not_json(what: str, data: bytes, exc: msgspec.DecodeError) -> MalformedBody:
    # orjson names line and column, and says "surrogate" where msgspec says "truncated".
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as found:
        where = f"line {found.lineno}, " if what == "body" else ""
        return MalformedBody(f"{what} is not valid JSON: {found.msg} ({where}column {found.colno})")
    return MalformedBody(f"{what} is not valid JSON: {exc}")


def _decode_raw(decoder: msgspec.json.Decoder, data: bytes, *, what: str) -> Any:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise MalformedBody(f"{what} must be a JSON array of objects") from exc
    except msgspec.DecodeError as exc:
        raise _not_json(what, data, exc) from exc
    except RecursionError as exc:
        raise MalformedBody(f"{what} is nested too deeply") from exc


def _split_array(body: bytes) -> tuple[list[bytes], bytes]:
    return [bytes(raw) for raw in _decode_raw(_RAW_LIST, body, what="body")], body


def _split_object(body: bytes) -> tuple[list[bytes], bytes]:
    record = bytes(_decode_raw(_RAW_ONE, body, what="body"))
    if not record.startswith(b"{"):
        raise MalformedBody("body must be a JSON object, an array of objects, or NDJSON")
    return [record], b"[" + record + b"]"


def _split_ndjson(body: bytes) -> tuple[list[bytes], bytes]:
    lines = [line.strip(_LINE_SPACE) for line in body.split(b"\n")]
    records = [line for line in lines if line]
    as_array = b"[" + b",".join(records) + b"]"
    try:
        # Each line holds one value exactly when the array's elements are the lines themselves.
        if [bytes(raw) for raw in _RAW_LIST.decode(as_array)] == records:
            return records, as_array
    except (msgspec.DecodeError, RecursionError):
        pass
    for number, line in enumerate(lines, start=1):
        if line:
            _decode_raw(_RAW_ONE, line, what=f"line {number}")
    return records, as_array


def _sniff(body: bytes) -> BodyKind:
    """Array for ``[…]``; object for one JSON value; NDJSON when the first line is a value."""
    if _STARTS_ARRAY.match(body):
        return "array"
    try:
        _RAW_ONE.decode(body)
        return "object"
    except (msgspec.DecodeError, RecursionError):
        first = next(line for line in body.split(b"\n") if line.strip(_LINE_SPACE))
    try:
        _RAW_ONE.decode(first)
        return "ndjson"
    except (msgspec.DecodeError, RecursionError):
        return "object"  # not line-delimited either: report the single-document error


_SPLITTERS: dict[str, Callable[[bytes], tuple[list[bytes], bytes]]] = {
    "array": _split_array,
    "object": _split_object,
    "ndjson": _split_ndjson,
}


def _split_body(body: bytes, *, kind: BodyKind) -> tuple[list[bytes], bytes]:
    """The raw records of a body, and the same records as one JSON array."""
    if not body or body.isspace():
        raise MalformedBody("body is empty")
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError as exc:
            raise MalformedBody(f"body is not valid UTF-8 (byte {exc.start})") from exc
    if kind not in _SPLITTERS and kind != "auto":
        raise ValueError(f"unknown body kind {kind!r}")
    return _SPLITTERS[_sniff(body) if kind == "auto" else kind](body)
