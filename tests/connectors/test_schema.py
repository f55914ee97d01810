"""The record type rules of SPEC §3.1 and the compiled validator (no database needed)."""

from __future__ import annotations

import json

import pytest

from connectors.schema import (
    FIELD_TYPES,
    BodyResult,
    FieldSpec,
    InvalidSchema,
    MalformedBody,
    RecordError,
    TooManyRecords,
    compile_schema,
    schema_definition_errors,
)

PEOPLE = compile_schema(
    fields=[
        {"name": "id", "type": "integer", "nullable": False},
        {"name": "email", "type": "string", "nullable": False},
        {"name": "score", "type": "number", "nullable": True},
        {"name": "active", "type": "boolean", "nullable": True},
        {"name": "born", "type": "date", "nullable": True},
        {"name": "seen_at", "type": "datetime", "nullable": True},
        {"name": "extra", "type": "json", "nullable": True},
    ]
)


def one_field(type_: str, *, nullable: bool = False):
    return compile_schema(fields=[{"name": "v", "type": type_, "nullable": nullable}])


def check_value(type_: str, literal: str) -> list[str]:
    """The error messages for ``{"v": <literal>}`` against a one-field schema of ``type_``."""
    result = one_field(type_).validate_body(f'{{"v": {literal}}}'.encode(), kind="object")
    return [error.message for error in result.errors]


def messages(result: BodyResult) -> list[str]:
    return [error.message for error in result.errors]


# --- every type, valid and invalid ----------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "literal"),
    [
        ("string", '""'),
        ("string", '"héllo \\"world\\" \\ud83d\\ude00"'),
        ("integer", "0"),
        ("integer", "-42"),
        ("integer", "9223372036854775807"),
        ("integer", "-9223372036854775808"),
        ("number", "3"),
        ("number", "-0.5"),
        ("number", "1e308"),
        ("number", "123456789012345678901234567890"),
        ("boolean", "true"),
        ("boolean", "false"),
        ("date", '"2024-02-29"'),
        ("datetime", '"2024-05-01T12:30:00Z"'),
        ("datetime", '"2024-05-01T12:30:00.123456+02:00"'),
        ("datetime", '"2024-05-01T12:30:00-05:30"'),
        ("json", '{"a": [1, "x", null, {"b": false}]}'),
        ("json", "[]"),
        ("json", '"text"'),
        ("json", "12.5"),
        ("json", "true"),
    ],
)
def test_each_type_accepts_its_own_values(type_, literal):
    assert check_value(type_, literal) == []


@pytest.mark.parametrize(
    ("type_", "literal", "message"),
    [
        ("integer", '"12"', 'field "v": expected integer, got string'),
        ("integer", "3.0", 'field "v": expected integer, got number 3.0'),
        ("integer", "1e2", 'field "v": expected integer, got number 1e2'),
        ("integer", "true", 'field "v": expected integer, got boolean'),
        ("number", "true", 'field "v": expected number, got boolean'),
        ("number", '"1.5"', 'field "v": expected number, got string'),
        ("boolean", "1", 'field "v": expected boolean, got integer'),
        ("boolean", '"true"', 'field "v": expected boolean, got string'),
        ("string", "12", 'field "v": expected string, got integer'),
        ("string", "{}", 'field "v": expected string, got object'),
        ("date", "20240101", 'field "v": expected date, got integer'),
        ("datetime", "[]", 'field "v": expected datetime, got array'),
    ],
)
def test_no_value_is_coerced_into_another_type(type_, literal, message):
    assert check_value(type_, literal) == [message]


def test_integers_outside_signed_64_bits_are_refused_with_the_bounds():
    for literal in ("9223372036854775808", "-9223372036854775809", "1" + "0" * 40):
        assert check_value("integer", literal) == [
            'field "v": integer must fit in signed 64 bits '
            "(-9223372036854775808 to 9223372036854775807)"
        ]


def test_numbers_too_large_for_a_float_are_refused_as_not_finite():
    assert check_value("number", "1e400") == [
        'field "v": number must be finite (this one is too large)'
    ]
    assert check_value("number", "-" + "9" * 400) != []


def test_numbers_out_of_range_inside_json_values_are_refused():
    assert check_value("json", '{"deep": [1, 2, 1e400]}') == [
        'field "v": contains a number that is out of range (numbers must be finite)'
    ]


@pytest.mark.parametrize("literal", ['"2024-02-30"', '"2023-02-29"', '"2024-13-01"', '"2024-1-1"'])
def test_dates_must_exist_and_be_written_yyyy_mm_dd(literal):
    assert check_value("date", literal) == [
        f'field "v": expected an existing date as YYYY-MM-DD, got {literal}'
    ]


def test_a_datetime_is_not_a_date():
    assert check_value("date", '"2024-01-01T00:00:00Z"') != []


def test_naive_datetimes_are_refused_because_they_lack_an_offset():
    assert check_value("datetime", '"2024-05-01T12:30:00"') == [
        'field "v": datetime must include a UTC offset'
    ]


@pytest.mark.parametrize("literal", ['"2024-05-01"', '"yesterday"', '"2024-05-01T25:00:00Z"'])
def test_malformed_datetimes_name_the_expected_format(literal):
    assert check_value("datetime", literal) == [
        'field "v": expected an ISO 8601 datetime with a UTC offset '
        f"(like 2024-05-01T12:30:00+02:00), got {literal}"
    ]


def test_a_json_field_accepts_null_only_when_nullable():
    assert check_value("json", "null") == ['field "v" must not be null']
    result = one_field("json", nullable=True).validate_body(b'{"v": null}', kind="object")
    assert result.errors == []


# --- presence, nullability and unknown fields -------------------------------------------------


def test_a_missing_non_nullable_field_is_required():
    result = PEOPLE.validate_body(b'{"id": 1}', kind="object")
    assert result.errors == [RecordError(0, "email", 'field "email" is required')]


def test_null_in_a_non_nullable_field_is_refused():
    result = PEOPLE.validate_body(b'{"id": 1, "email": null}', kind="object")
    assert result.errors == [RecordError(0, "email", 'field "email" must not be null')]


def test_a_nullable_field_may_be_missing_or_null():
    body = b'[{"id": 1, "email": "a@x"}, {"id": 2, "email": "b@x", "score": null, "extra": null}]'
    result = PEOPLE.validate_body(body, kind="array")
    assert result.errors == []
    assert result.records == [b'{"id": 1, "email": "a@x"}', body[28:-1]]


def test_a_field_not_in_the_schema_rejects_the_record():
    result = PEOPLE.validate_body(b'{"id": 1, "email": "a@x", "nickname": "Al"}', kind="object")
    assert result.records == []
    assert result.errors == [RecordError(0, "nickname", 'field "nickname" is not in the schema')]


def test_every_error_of_a_record_is_reported_schema_fields_first():
    body = b'{"nickname": 1, "id": "7", "active": 1, "born": "2024-02-30"}'
    assert messages(PEOPLE.validate_body(body, kind="object")) == [
        'field "id": expected integer, got string',
        'field "email" is required',
        'field "active": expected boolean, got integer',
        'field "born": expected an existing date as YYYY-MM-DD, got "2024-02-30"',
        'field "nickname" is not in the schema',
    ]


# --- the NUL character ----------------------------------------------------------------------


def test_nul_in_a_string_field_is_refused():
    result = PEOPLE.validate_body(b'{"id": 1, "email": "a\\u0000b"}', kind="object")
    assert result.errors == [
        RecordError(0, "email", 'field "email": text must not contain the NUL character (\\u0000)')
    ]


def test_an_escaped_backslash_before_u0000_is_text_not_nul():
    for record in (b'{"id": 1, "email": "a\\\\u0000"}', b'{"id": 1, "email": "\\\\\\\\u0000"}'):
        result = PEOPLE.validate_body(record, kind="object")
        assert result.errors == []
        assert result.records == [record]


def test_an_escaped_backslash_followed_by_a_real_nul_is_refused():
    result = PEOPLE.validate_body(b'{"id": 1, "email": "\\\\\\u0000"}', kind="object")
    assert [error.field for error in result.errors] == ["email"]


@pytest.mark.parametrize(
    "extra",
    ['{"k\\u0000": 1}', '{"a": ["x", "y\\u0000"]}', '"\\u0000"', '[{"b": {"c\\u0000d": 2}}]'],
)
def test_nul_anywhere_inside_a_json_value_is_refused_keys_included(extra):
    body = f'{{"id": 1, "email": "a@x", "extra": {extra}}}'.encode()
    assert messages(PEOPLE.validate_body(body, kind="object")) == [
        'field "extra": text must not contain the NUL character (\\u0000)'
    ]


def test_nul_in_an_unknown_key_reports_the_unknown_field_readably():
    result = PEOPLE.validate_body(b'{"id": 1, "email": "a@x", "n\\u0000": 1}', kind="object")
    assert result.errors == [RecordError(0, "n\x00", 'field "n\\u0000" is not in the schema')]


def test_records_without_nul_in_a_body_that_has_one_are_still_valid():
    body = b'[{"id": 1, "email": "a"}, {"id": 2, "email": "\\u0000"}, {"id": 3, "email": "c"}]'
    result = PEOPLE.validate_body(body, kind="array")
    assert result.records == [b'{"id": 1, "email": "a"}', b'{"id": 3, "email": "c"}']
    assert [error.index for error in result.errors] == [1]


# --- records and bodies -----------------------------------------------------------------------


def test_valid_records_are_returned_as_their_own_bytes_in_body_order():
    body = b'[ {"id": 2, "email": "b", "score": 1.50E+2},\n  {"email": "a", "id": 1} ]'
    result = PEOPLE.validate_body(body, kind="array")
    assert result == BodyResult(
        records=[b'{"id": 2, "email": "b", "score": 1.50E+2}', b'{"email": "a", "id": 1}'],
        errors=[],
        error_total=0,
    )


def test_records_that_are_not_objects_are_record_errors_without_a_field():
    result = PEOPLE.validate_body(b'[1, "x", null, [], {"id": 1, "email": "a"}]', kind="array")
    assert result.records == [b'{"id": 1, "email": "a"}']
    assert result.errors == [
        RecordError(0, None, "record must be a JSON object, got integer"),
        RecordError(1, None, "record must be a JSON object, got string"),
        RecordError(2, None, "record must be a JSON object, got null"),
        RecordError(3, None, "record must be a JSON object, got array"),
    ]


def test_errors_are_capped_but_all_are_counted():
    body = json.dumps([{"id": "x", "email": 1}] * 60).encode()
    result = PEOPLE.validate_body(body, kind="array", max_errors=100)
    assert len(result.errors) == 100
    assert result.error_total == 120
    assert result.errors[-1] == RecordError(
        49, "email", 'field "email": expected string, got integer'
    )
    assert PEOPLE.validate_body(body, kind="array", max_errors=0).errors == []
    assert len(PEOPLE.validate_body(body, kind="array", max_errors=None).errors) == 120


def test_invalid_records_anywhere_in_a_large_body_are_all_found_in_order():
    records = [{"id": i, "email": f"u{i}"} for i in range(1000)]
    broken = {0: {"id": "0"}, 255: {"id": 2.5}, 256: {"email": None}, 700: {"email": "\x00"}}
    broken |= {999: {"nickname": 1}}
    for index, change in broken.items():
        records[index] |= change
    result = PEOPLE.validate_body(json.dumps(records).encode(), kind="array")
    assert [error.index for error in result.errors] == sorted(broken)
    assert [json.loads(record)["id"] for record in result.records] == [
        i for i in range(1000) if i not in broken
    ]


def test_a_single_object_body_is_one_record():
    result = PEOPLE.validate_body(b' {"id": 1, "email": "a"}\n', kind="object")
    assert result.records == [b'{"id": 1, "email": "a"}']


def test_auto_tells_an_object_from_an_array():
    one = PEOPLE.validate_body(b'{"id": 1, "email": "a"}', kind="auto")
    many = PEOPLE.validate_body(b'\n [{"id": 1, "email": "a"}]', kind="auto")
    assert one.records == many.records == [b'{"id": 1, "email": "a"}']


@pytest.mark.parametrize(
    ("body", "kind", "message"),
    [
        (b"", "auto", "body is empty"),
        (b" \r\n\t", "ndjson", "body is empty"),
        (b'"text"', "auto", "body must be a JSON object, an array of objects, or NDJSON"),
        (b"[1, 2]", "object", "body must be a JSON object, an array of objects, or NDJSON"),
        (b'{"id": 1}', "array", "body must be a JSON array of objects"),
        (b'[{"id": 1},]', "array", "body is not valid JSON: trailing comma"),
        (b'{"id": 1', "auto", "body is not valid JSON"),
        (b"[NaN]", "array", "body is not valid JSON"),
        (b'[{"id": 1}] {}', "auto", "body is not valid JSON"),
    ],
)
def test_bodies_of_the_wrong_shape_or_not_json_are_malformed(body, kind, message):
    with pytest.raises(MalformedBody) as raised:
        PEOPLE.validate_body(body, kind=kind)
    assert raised.value.message.startswith(message)


def test_a_malformed_body_names_line_and_column():
    with pytest.raises(MalformedBody, match=r"\(line 2, column \d+\)"):
        PEOPLE.validate_body(b'[{"id": 1},\n {"id": ]', kind="array")


def test_invalid_utf8_is_a_malformed_body():
    with pytest.raises(MalformedBody, match="not valid UTF-8"):
        PEOPLE.validate_body(b'{"id": 1, "email": "\xff"}', kind="object")
    with pytest.raises(MalformedBody, match="not valid UTF-8"):  # an encoded surrogate
        PEOPLE.validate_body(b'{"id": 1, "extra": {"\xed\xa0\x80": 1}}', kind="object")


@pytest.mark.parametrize("escape", ["\\ud800", "\\udc00", "\\ud800x", "\\ud800\\u0041"])
def test_a_lone_surrogate_escape_is_a_malformed_body(escape):
    with pytest.raises(MalformedBody, match="surrogate"):
        PEOPLE.validate_body(f'{{"id": 1, "email": "{escape}"}}'.encode(), kind="object")


def test_a_surrogate_pair_escape_is_valid_text():
    result = PEOPLE.validate_body(b'{"id": 1, "email": "\\ud83d\\ude00"}', kind="object")
    assert result.errors == []


def test_too_many_records_raise_with_the_count():
    body = json.dumps([{"id": i, "email": "a"} for i in range(3)]).encode()
    with pytest.raises(TooManyRecords) as raised:
        PEOPLE.validate_body(body, kind="array", max_records=2)
    assert raised.value.count == 3
    assert len(PEOPLE.validate_body(body, kind="array", max_records=3).records) == 3


def test_deep_nesting_is_a_clean_error_never_a_crash():
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(MalformedBody, match="nested too deeply"):
        PEOPLE.validate_body(deep, kind="auto")
    with pytest.raises(MalformedBody, match="nested too deeply"):
        PEOPLE.validate_body(b'{"id": 1, "extra": ' + deep + b"}", kind="object")


def test_nesting_a_few_hundred_levels_deep_is_fine():
    body = b'{"id": 1, "email": "a", "extra": ' + b"[" * 300 + b"]" * 300 + b"}"
    assert PEOPLE.validate_body(body, kind="object").errors == []


def test_an_unknown_body_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown body kind"):
        PEOPLE.validate_body(b"{}", kind="xml")  # type: ignore[arg-type]


# --- NDJSON -----------------------------------------------------------------------------------


def test_ndjson_skips_blank_lines_and_indexes_records_among_the_others():
    body = b'{"id": 1, "email": "a"}\r\n\n   \n{"id": "2", "email": "b"}\n{"id": 3, "email": "c"}\n'
    result = PEOPLE.validate_body(body, kind="ndjson")
    assert result.records == [b'{"id": 1, "email": "a"}', b'{"id": 3, "email": "c"}']
    assert result.errors == [RecordError(1, "id", 'field "id": expected integer, got string')]


def test_an_ndjson_line_that_is_not_json_is_malformed_and_named():
    body = b'{"id": 1, "email": "a"}\n\n{"id": 2, "email": }\n'
    with pytest.raises(MalformedBody, match=r"^line 3 is not valid JSON: .*\(column \d+\)$"):
        PEOPLE.validate_body(body, kind="ndjson")


@pytest.mark.parametrize("line", [b"1, 2", b'{"id": 1} {"id": 2}', b'[{"id": 1}', b"{"])
def test_an_ndjson_line_must_hold_exactly_one_value(line):
    body = b'{"id": 1, "email": "a"}\n' + line + b'\n{"id": 3, "email": "c"}]'
    with pytest.raises(MalformedBody, match=r"^line 2 "):
        PEOPLE.validate_body(body, kind="ndjson")


def test_an_ndjson_line_that_is_not_an_object_is_a_record_error():
    result = PEOPLE.validate_body(b'{"id": 1, "email": "a"}\n[1]\n', kind="ndjson")
    assert result.errors == [RecordError(1, None, "record must be a JSON object, got array")]


def test_auto_detects_ndjson_from_several_lines():
    body = b'{"id": 1, "email": "a"}\n{"id": 2, "email": "b"}'
    assert len(PEOPLE.validate_body(body, kind="auto").records) == 2
    with pytest.raises(MalformedBody, match=r"^line 2 "):
        PEOPLE.validate_body(b'{"id": 1, "email": "a"}\n{"id": 2,', kind="auto")


def test_auto_reports_a_broken_pretty_printed_object_as_one_document():
    with pytest.raises(MalformedBody, match=r"^body is not valid JSON"):
        PEOPLE.validate_body(b'{\n  "id": 1,\n  "email": \n}', kind="auto")


# --- field names ------------------------------------------------------------------------------


def test_field_names_need_not_be_python_identifiers():
    names = ["first name", "prénom 名前", "x" * 255, "class", "__init__", "f1", "f0", "$ref", "a.b"]
    schema = compile_schema(fields=[FieldSpec(name, "integer", False) for name in names])
    record = {name: position for position, name in enumerate(names)}
    body = json.dumps(record, ensure_ascii=False).encode()
    assert schema.validate_body(body, kind="object").records == [body]
    del record["f1"]
    assert schema.validate_python([record]) == [RecordError(0, "f1", 'field "f1" is required')]


def test_field_names_with_quotes_and_backslashes_work_on_the_slower_path():
    schema = compile_schema(
        fields=[FieldSpec('say "hi"', "integer", False), FieldSpec("C:\\dir", "date", True)]
    )
    assert (
        schema.validate_body(b'{"say \\"hi\\"": 1, "C:\\\\dir": null}', kind="object").errors == []
    )
    result = schema.validate_body(
        b'[{"C:\\\\dir": "2024-02-30", "x": 1}, {"say \\"hi\\"": 2}]', kind="array"
    )
    assert result.records == [b'{"say \\"hi\\"": 2}']
    assert messages(result) == [
        'field "say \\"hi\\"" is required',
        'field "C:\\\\dir": expected an existing date as YYYY-MM-DD, got "2024-02-30"',
        'field "x" is not in the schema',
    ]
    assert schema.validate_python([{'say "hi"': 1.5}]) == [
        RecordError(0, 'say "hi"', 'field "say \\"hi\\"": expected integer, got number 1.5')
    ]


def test_field_names_are_matched_exactly_case_and_escapes_included():
    schema = compile_schema(fields=[FieldSpec("Prénom", "string", True)])
    assert schema.validate_body(b'{"Pr\\u00e9nom": "x"}', kind="object").errors == []
    assert messages(schema.validate_body(b'{"pr\\u00e9nom": "x"}', kind="object")) == [
        'field "prénom" is not in the schema'
    ]


# --- validate_python --------------------------------------------------------------------------


def test_validate_python_applies_the_same_rules_to_dicts():
    records = [
        {"id": 1, "email": "a", "born": "2024-01-31", "seen_at": "2024-01-31T08:00:00+01:00"},
        {"id": 2.0, "email": "b", "active": 1},
        {"email": "c", "extra": {"k": [1, None]}, "other": True},
        ["not", "a", "dict"],
        {"id": 5, "email": "a\x00b", "seen_at": "2024-01-31T08:00:00"},
    ]
    assert PEOPLE.validate_python(records) == [
        RecordError(1, "id", 'field "id": expected integer, got number 2.0'),
        RecordError(1, "active", 'field "active": expected boolean, got integer'),
        RecordError(2, "id", 'field "id" is required'),
        RecordError(2, "other", 'field "other" is not in the schema'),
        RecordError(3, None, "record must be a JSON object, got array"),
        RecordError(4, "email", 'field "email": text must not contain the NUL character (\\u0000)'),
        RecordError(4, "seen_at", 'field "seen_at": datetime must include a UTC offset'),
    ]


def test_validate_python_refuses_nan_and_infinity_in_number_fields():
    records = [
        {"id": 1, "email": "a", "score": value} for value in (1.5, float("nan"), float("-inf"))
    ]
    assert PEOPLE.validate_python(records) == [
        RecordError(1, "score", 'field "score": number must be finite'),
        RecordError(2, "score", 'field "score": number must be finite'),
    ]


def test_validate_python_of_nothing_is_no_errors():
    assert PEOPLE.validate_python([]) == []


# --- schema definitions -----------------------------------------------------------------------


def test_a_well_formed_definition_has_no_errors():
    fields = [{"name": f"f {t}", "type": t, "nullable": t == "json"} for t in FIELD_TYPES]
    assert schema_definition_errors(fields=fields) == []


def test_a_schema_needs_at_least_one_field():
    assert [e.message for e in schema_definition_errors(fields=[])] == [
        "a schema needs at least one field"
    ]
    assert schema_definition_errors(fields="name")[0].index is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("item", "field", "message"),
    [
        ({"name": "", "type": "string", "nullable": False}, "name", "name must be 1 to 255"),
        ({"name": "x" * 256, "type": "string", "nullable": False}, "name", "name must be 1 to 255"),
        ({"name": 5, "type": "string", "nullable": False}, "name", "name must be a string"),
        ({"name": "a\x00", "type": "string", "nullable": False}, "name", "name must not contain"),
        ({"name": "a\nb", "type": "string", "nullable": False}, "name", "name must not contain"),
        ({"name": "\ud800", "type": "string", "nullable": False}, "name", "name must be valid"),
        ({"name": "a", "type": "text", "nullable": False}, "type", "type must be one of string,"),
        ({"name": "a", "type": "String", "nullable": False}, "type", "type must be one of"),
        ({"name": "a", "type": "string", "nullable": "yes"}, "nullable", "nullable must be true"),
        ({"name": "a", "type": "string", "nullable": 0}, "nullable", "nullable must be true"),
        ({"type": "string", "nullable": False}, "name", "name is required"),
        ({"name": "a", "nullable": False}, "type", "type is required"),
        ({"name": "a", "type": "string"}, "nullable", "nullable is required"),
        (
            {"name": "a", "type": "string", "nullable": True, "size": 3},
            "size",
            'unknown key "size"',
        ),
        ("a:string", None, "each field must be an object"),
    ],
)
def test_each_field_definition_problem_is_reported_with_its_key(item, field, message):
    errors = schema_definition_errors(
        fields=[{"name": "ok", "type": "json", "nullable": True}, item]
    )
    assert [(e.index, e.field) for e in errors] == [(1, field)]
    assert errors[0].message.startswith(message)


def test_a_name_of_exactly_255_characters_is_allowed():
    assert schema_definition_errors(fields=[FieldSpec("é" * 255, "string", False)]) == []


def test_duplicate_names_are_reported_at_the_second_field():
    fields = [FieldSpec("a", "string", False), FieldSpec("b", "string", False)]
    errors = schema_definition_errors(fields=[*fields, FieldSpec("a", "integer", True)])
    assert [(e.index, e.field, e.message) for e in errors] == [
        (2, "name", 'name "a" is already used at index 0')
    ]


def test_names_differing_only_in_case_are_distinct():
    fields = [FieldSpec("Email", "string", False), FieldSpec("email", "string", False)]
    assert schema_definition_errors(fields=fields) == []


def test_field_specs_and_plain_tuples_are_definitions_too():
    assert (
        schema_definition_errors(fields=[("a", "string", False), FieldSpec("b", "date", True)])
        == []
    )


def test_compile_schema_refuses_an_invalid_definition():
    with pytest.raises(InvalidSchema) as raised:
        compile_schema(fields=[{"name": "a", "type": "float", "nullable": False}])
    assert [(e.index, e.field) for e in raised.value.errors] == [(0, "type")]


# --- compilation is memoized ------------------------------------------------------------------


def test_compile_schema_returns_the_cached_object_for_equal_fields():
    as_dicts = [{"name": "a", "type": "string", "nullable": False}]
    first = compile_schema(fields=as_dicts)
    assert compile_schema(fields=[dict(item) for item in as_dicts]) is first
    assert compile_schema(fields=[FieldSpec("a", "string", False)]) is first
    assert compile_schema(fields=(("a", "string", False),)) is first
    assert first.fields == (FieldSpec("a", "string", False),)


def test_different_schemas_compile_to_different_objects():
    base = compile_schema(fields=[FieldSpec("a", "string", False)])
    assert compile_schema(fields=[FieldSpec("a", "string", True)]) is not base
    assert compile_schema(fields=[FieldSpec("a", "integer", False)]) is not base
