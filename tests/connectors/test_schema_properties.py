"""Property tests: the validator never fails in an unplanned way, and valid records round-trip."""

from __future__ import annotations

import json
import re
from datetime import timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.schema import (
    FIELD_TYPES,
    FieldSpec,
    MalformedBody,
    RecordError,
    TooManyRecords,
    compile_schema,
)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that may hold anything Python can: NUL, control characters, lone surrogates.
any_text = st.text(st.characters(codec=None, categories=None), max_size=12)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=20,
)


def encode(value: object, *, ascii_only: bool) -> bytes:
    """JSON as clients write it: lone surrogates only survive as ``\\udXXX`` escapes."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass" if ascii_only else "strict")


SCHEMA = compile_schema(
    fields=[
        FieldSpec("id", "integer", False),
        FieldSpec("name", "string", True),
        FieldSpec("score", "number", True),
        FieldSpec("when", "datetime", True),
        FieldSpec("data", "json", True),
    ]
)


def validate_or_refuse(body: bytes, kind: str) -> None:
    """Validate ``body``; check the result's invariants or that the refusal is a planned one."""
    try:
        result = SCHEMA.validate_body(body, kind=kind, max_errors=5, max_records=50)
    except (MalformedBody, TooManyRecords):
        return
    assert len(result.errors) <= 5
    assert result.error_total >= len(result.errors)
    assert bool(result.errors) == bool(result.error_total)
    for record in result.records:
        assert isinstance(orjson.loads(record), dict)
        assert all(storable_in_jsonb(text) for text in strings_in(json.loads(record)))


def strings_in(value: object) -> list[str]:
    """Every string in a JSON value, keys included (iterative: values may nest deeply)."""
    found, pending = [], [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            found.extend(item)
            pending.extend(item.values())
    return found


def storable_in_jsonb(text: str) -> bool:
    """PostgreSQL jsonb refuses U+0000 and (being UTF-8) unpaired surrogates."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


@SETTINGS
@given(
    value=json_values, ascii_only=st.booleans(), kind=st.sampled_from(["auto", "array", "object"])
)
def test_any_json_value_as_a_whole_body_is_a_result_or_a_planned_refusal(value, ascii_only, kind):
    try:
        body = encode(value, ascii_only=ascii_only)
    except UnicodeEncodeError:  # a lone surrogate cannot be UTF-8: that body cannot be sent
        return
    validate_or_refuse(body, kind)


@SETTINGS
@given(records=st.lists(json_values, max_size=5), ascii_only=st.booleans())
def test_any_json_values_as_records_are_results_never_crashes(records, ascii_only):
    try:
        array = encode(records, ascii_only=ascii_only)
        lines = b"\n".join(encode(record, ascii_only=ascii_only) for record in records)
    except UnicodeEncodeError:
        return
    validate_or_refuse(array, "array")
    validate_or_refuse(lines, "ndjson")


@SETTINGS
@given(body=st.binary(max_size=200))
def test_arbitrary_bytes_are_a_result_or_a_malformed_body(body):
    for kind in ("auto", "array", "object", "ndjson"):
        validate_or_refuse(body, kind)


@SETTINGS
@given(record=st.dictionaries(st.sampled_from(["id", "name", "score", "data", "x"]), json_values))
def test_validate_python_agrees_with_validate_body(record):
    try:
        body = encode(record, ascii_only=False)
    except UnicodeEncodeError:
        return
    try:
        from_body = SCHEMA.validate_body(body, kind="object", max_errors=1000).errors
    except MalformedBody:  # an unpaired surrogate: not a valid body, nor valid text to encode
        return
    assert without_number_text(SCHEMA.validate_python([record])) == without_number_text(from_body)


def without_number_text(errors: list[RecordError]) -> list[tuple]:
    """Errors, except how a number is written (json.dumps and msgspec spell 1e16 differently)."""
    return [(e.index, e.field, re.sub("got number .*", "got number", e.message)) for e in errors]


# --- generated valid records ------------------------------------------------------------------

clean_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
clean_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**100), max_value=2**100)
    | st.floats(allow_nan=False, allow_infinity=False)
    | clean_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(clean_text, children, max_size=4)
    ),
    max_leaves=20,
)
offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
VALUES = {
    "string": clean_text,
    "integer": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "number": st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(10**30), max_value=10**30),
    "boolean": st.booleans(),
    "date": st.dates().map(lambda day: day.isoformat()),
    "datetime": st.datetimes(timezones=offsets).map(lambda moment: moment.isoformat()),
    "json": clean_json.filter(lambda value: value is not None),
}
field_names = st.text(st.characters(codec="utf-8", min_codepoint=0x20), min_size=1, max_size=255)
schemas = st.lists(
    st.builds(FieldSpec, field_names, st.sampled_from(FIELD_TYPES), st.booleans()),
    min_size=1,
    max_size=8,
    unique_by=lambda spec: spec.name,
)


@st.composite
def schema_and_record(draw):
    fields = draw(schemas)
    record = {}
    for spec in fields:
        presence = draw(st.sampled_from(["value", "null", "missing"])) if spec.nullable else "value"
        if presence != "missing":
            record[spec.name] = None if presence == "null" else draw(VALUES[spec.type])
    return fields, record


@SETTINGS
@given(case=schema_and_record(), ascii_only=st.booleans(), kind=st.sampled_from(["object", "auto"]))
def test_a_record_made_to_match_its_schema_validates_and_round_trips(case, ascii_only, kind):
    fields, record = case
    schema = compile_schema(fields=fields)
    body = encode(record, ascii_only=ascii_only)
    result = schema.validate_body(body, kind=kind)
    assert result.errors == []
    assert result.records == [body]
    assert json.loads(result.records[0]) == record
    assert schema.validate_python([record]) == []


@SETTINGS
@given(case=schema_and_record(), count=st.integers(min_value=1, max_value=5))
def test_arrays_and_ndjson_of_matching_records_keep_every_record_in_order(case, count):
    fields, record = case
    schema = compile_schema(fields=fields)
    compact = json.dumps(record, separators=(",", ":")).encode()
    as_array = schema.validate_body(b"[" + b",".join([compact] * count) + b"]", kind="array")
    as_lines = schema.validate_body(b"\n".join([compact] * count), kind="ndjson")
    assert as_array.records == as_lines.records == [compact] * count


# --- deep nesting -----------------------------------------------------------------------------

DEPTH = 100_000


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"[" * DEPTH + b"]" * DEPTH, "auto"),
        (b"[" * DEPTH, "array"),
        (b'{"a":' * DEPTH + b"1" + b"}" * DEPTH, "object"),
        (b"[" + b"[" * DEPTH + b"]" * DEPTH + b"]", "array"),
        (b'{"id": 1}\n' + b"[" * DEPTH + b"]" * DEPTH, "ndjson"),
        (b'{"id": 1, "data": ' + b"[" * DEPTH + b"]" * DEPTH + b"}", "object"),
        (b'[{"id": 1, "data": ' + b'{"k":' * DEPTH + b"0" + b"}" * DEPTH + b"}]", "array"),
    ],
)
def test_deep_nesting_gives_a_clean_error_never_a_crash(body, kind):
    with pytest.raises(MalformedBody, match="nested too deeply"):
        SCHEMA.validate_body(body, kind=kind)


def nested_lists(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [10, 100, 500, 900, 990, 1000, 1100, DEPTH])
def test_nesting_near_the_recursion_limit_is_a_result_or_a_clean_error(depth):
    data = b"[" * depth + b"]" * depth
    validate_or_refuse(b'[{"id": 1, "data": ' + data + b"}]", "array")
    validate_or_refuse(b'{"id": 1, "data": ' + data + b"}", "object")
    errors = SCHEMA.validate_python([{"id": 1, "data": nested_lists(depth)}])
    assert all(error.message.endswith("nested too deeply") for error in errors)


def test_validate_python_reports_records_too_deep_to_encode():
    errors = SCHEMA.validate_python([{"id": 1}, {"id": 2, "data": nested_lists(DEPTH)}])
    assert [(error.index, error.message) for error in errors] == [
        (1, "record is nested too deeply")
    ]


# --- many records, some invalid -----------------------------------------------------------------

VALID_RECORD = b'{"id": %d, "name": "x"}'
BROKEN_RECORDS = {
    "wrong type": b'{"id": "%d"}',
    "unknown field": b'{"id": %d, "other": 1}',
    "missing field": b'{"name": "x%d"}',
    "nul": b'{"id": %d, "name": "a\\u0000b"}',
    "huge number": b'{"id": %d, "data": [1e400]}',
    "not an object": b"[%d]",
}


@settings(max_examples=30, deadline=None)
@given(
    broken=st.dictionaries(
        st.integers(min_value=0, max_value=1199),
        st.sampled_from(sorted(BROKEN_RECORDS)),
        max_size=12,
    ),
    count=st.integers(min_value=1, max_value=1200),
)
def test_every_invalid_record_of_a_large_body_is_found_and_every_valid_one_kept(broken, count):
    broken = {index: how for index, how in broken.items() if index < count}
    lines = [BROKEN_RECORDS.get(broken.get(i, ""), VALID_RECORD) % i for i in range(count)]
    result = SCHEMA.validate_body(b"[" + b",".join(lines) + b"]", kind="array", max_errors=5000)
    assert sorted({error.index for error in result.errors}) == sorted(broken)
    assert result.records == [line for index, line in enumerate(lines) if index not in broken]
