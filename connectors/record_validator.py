"""The compiled validator of a schema: records checked against it, fast.

Each schema is compiled once into a msgspec ``Struct`` type. A body is split into raw record
slices (``connectors.body_split``), then decoded whole into ``list[Struct]`` (one call). Only
when that fails, or when the body holds a real ``\\u0000`` escape, does a slow path look at
records one by one to collect every error. Valid records are returned as their own bytes from
the body (checked JSON, whitespace as sent), so every value is kept exactly as sent.
The rules themselves are in the docstring of ``connectors.schema``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from connectors.body_split import RAW_OBJECT, BodyKind, split_body
from connectors.field_types import (
    NAIVE_DATETIME,
    TYPE_RULES,
    VALUE_DECODERS,
    FieldSpec,
    has_nul,
    json_kind,
    quote,
    snippet,
)

_CHUNK = 256  # records tried together after an invalid one
_FAILED_AT = re.compile(r"`\$\[(\d+)\]")  # where msgspec says a list[Struct] failed: `$[12].name`


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


class TooManyRecords(ValueError):
    """The body holds more records than the caller allows."""

    def __init__(self, count: int):
        super().__init__(f"the body holds {count} records, more than allowed")
        self.count = count


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
        (f"f{i}", TYPE_RULES[spec.type].annotation | None, None)
        if spec.nullable
        else (f"f{i}", TYPE_RULES[spec.type].annotation)
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
        self.rule = TYPE_RULES[spec.type]
        self.decoder = VALUE_DECODERS[spec.type]
        self.label = f"field {quote(spec.name)}"

    def problem(self, value: bytes | None) -> str | None:
        """Why ``value`` (raw JSON; None when missing) breaks this field, or None if it does not."""
        if value is None:
            return None if self.nullable else f"{self.label} is required"
        kind = json_kind(value)
        if kind == "null":
            return None if self.nullable else f"{self.label} must not be null"
        if kind not in self.rule.accepts:
            got = f"number {snippet(value)}" if kind == "number" else kind
            return f"{self.label}: expected {self.type}, got {got}"
        try:
            self.decoder.decode(value)
        except msgspec.DecodeError:
            return f"{self.label}: {self._refusal(value)}"
        except RecursionError:
            return f"{self.label}: value is nested too deeply"
        if has_nul(value):
            return f"{self.label}: text must not contain the NUL character (\\u0000)"
        return None

    def _refusal(self, value: bytes) -> str:
        if self.type == "datetime":
            try:
                NAIVE_DATETIME.decode(value)
                return "datetime must include a UTC offset"
            except msgspec.DecodeError:
                pass
        return self.rule.refusal.format(value=snippet(value))


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
        raws, as_array = split_body(body, kind=kind)
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
            RecordError(index, name, f"field {quote(name)}: number must be finite")
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
        if self._list_decoder is None or has_nul(window):
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
                if not has_nul(raw):
                    return []
                failure = "record contains the NUL character"
        except (msgspec.DecodeError, RecursionError) as exc:
            failure = f"record is invalid: {exc}"
        try:
            values = RAW_OBJECT.decode(raw)
        except msgspec.DecodeError:
            return [RecordError(index, None, f"record must be a JSON object, got {json_kind(raw)}")]
        except RecursionError:
            return [RecordError(index, None, "record is nested too deeply")]
        errors = []
        for check in self._checks:
            value = values.get(check.name)
            problem = check.problem(None if value is None else bytes(value))
            if problem is not None:
                errors.append(RecordError(index, check.name, problem))
        errors.extend(
            RecordError(index, key, f"field {quote(key)} is not in the schema")
            for key in values
            if key not in self._names
        )
        if failure is not None and not errors:  # never accept what failed above
            errors.append(RecordError(index, None, failure))
        return errors
