"""Pure pieces of the engine: mapping rules, retry delays, cron, the batch body slices."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from connectors.schema import FieldSpec, compile_schema
from pipelines.cron import InvalidSchedule, check_schedule, next_fire_time
from pipelines.delivery import final_state
from pipelines.mapping import (
    default_mapping,
    is_compatible,
    is_statically_safe,
    map_record,
    mapping_errors,
)
from pipelines.records import BatchBody
from pipelines.results import rejected_records
from pipelines.retries import gave_up_reason, next_delay

TYPES = ["string", "integer", "number", "boolean", "date", "datetime", "json"]


@pytest.mark.parametrize("source", TYPES)
@pytest.mark.parametrize("destination", TYPES)
def test_types_are_compatible_only_when_identical_widening_or_into_json(source, destination):
    expected = (
        source == destination
        or destination == "json"
        or (source, destination)
        == (
            "integer",
            "number",
        )
    )
    assert is_compatible(source, destination) is expected


SRC = [FieldSpec("id", "integer", False), FieldSpec("n", "string", True)]
DST = [FieldSpec("id", "number", False), FieldSpec("n", "string", True)]


def test_default_mapping_pairs_fields_of_the_same_name():
    assert default_mapping(source_fields=SRC, destination_fields=DST) == {"id": "id", "n": "n"}


def test_a_nullable_destination_field_may_stay_unmapped():
    assert mapping_errors(mapping={"id": "id"}, source_fields=SRC, destination_fields=DST) == []


@pytest.mark.parametrize("mapping", [None, [], {"id": 3}, "id"])
def test_a_mapping_that_is_not_an_object_of_names_is_one_clear_error(mapping):
    (error,) = mapping_errors(mapping=mapping, source_fields=SRC, destination_fields=DST)
    assert error.field is None


def test_map_record_renames_and_leaves_missing_values_missing():
    assert map_record({"a": 1, "b": None}, (("x", "a"), ("y", "b"), ("z", "c"))) == {
        "x": 1,
        "y": None,
    }


def test_the_retry_schedule_gives_each_step_then_none_when_exhausted():
    schedule = (5, 30, 120)
    delays = [next_delay(failed_attempts=n, retry_after=None, schedule=schedule) for n in (1, 2, 3)]
    assert delays == [5, 30, 120]
    assert next_delay(failed_attempts=4, retry_after=None, schedule=schedule) is None


def test_the_next_attempt_never_comes_before_retry_after():
    assert next_delay(failed_attempts=1, retry_after=70, schedule=(5, 30)) == 70
    assert next_delay(failed_attempts=2, retry_after=3, schedule=(5, 30)) == 30


def test_the_gave_up_reason_names_the_last_error_and_the_attempts():
    reason = gave_up_reason(last_error="The destination answered 503.", attempts=11, seconds=86400)
    assert reason.startswith("The destination answered 503.")
    assert "Gave up after 11 attempts over 24.0 h" in reason


def test_per_record_rejections_are_read_from_the_body_and_checked():
    from osmos.outbound.client import Response

    body = (
        b'{"rejected": [{"index": 2, "reason": "bad email"}, {"index": 9, "reason": "x"},'
        b' {"index": 2, "reason": "twice"}, {"index": "1"}, {"index": 0}]}'
    )
    response = Response(status=207, headers={}, body=body, excerpt="", elapsed=0.1)
    assert rejected_records(response, record_count=3) == [
        (0, "Rejected by the destination: no reason given"),
        (2, "Rejected by the destination: bad email"),
    ]
    for unreadable in (b"", b"not json", b"[]", b'{"rejected": 3}'):
        response = Response(status=200, headers={}, body=unreadable, excerpt="", elapsed=0.1)
        assert rejected_records(response, record_count=3) == []


@pytest.mark.parametrize(
    ("delivered", "failed", "state"),
    [(0, 0, "succeeded"), (5, 0, "succeeded"), (0, 5, "failed"), (3, 2, "partially_failed")],
)
def test_final_state_follows_from_the_counts(delivered, failed, state):
    assert final_state(delivered=delivered, failed=failed) == state


def test_cron_and_time_zone_are_checked():
    check_schedule(cron="*/15 8-18 * * 1-5", timezone="America/New_York")
    for cron, zone, field in [
        ("0 7 * *", "UTC", "cron"),
        ("0 7 * * * *", "UTC", "cron"),
        ("0 7 * * *", "Nowhere/City", "timezone"),
    ]:
        with pytest.raises(InvalidSchedule) as info:
            check_schedule(cron=cron, timezone=zone)
        assert info.value.field == field


def test_next_fire_time_across_the_spring_dst_change():
    after = datetime(2025, 3, 29, 12, tzinfo=UTC)  # Paris moves to UTC+2 on the 30th
    assert next_fire_time(cron="0 7 * * *", timezone="Europe/Paris", after=after) == datetime(
        2025, 3, 30, 5, tzinfo=UTC
    )


@pytest.fixture
def body(settings):
    settings.DELIVERY_SPOOL_MEMORY_BYTES = 64  # spills to disk: the file path is exercised
    batch = BatchBody()
    for sequence in range(1, 6):
        batch.add(sequence, b'{"id":%d}' % sequence)
    yield batch
    batch.close()


def test_batch_body_parts_are_json_arrays_of_exactly_those_records(body):
    assert body.part(0, 5).read() == b'[{"id":1},{"id":2},{"id":3},{"id":4},{"id":5}]'
    assert body.part(1, 3).read() == b'[{"id":2},{"id":3}]'
    assert body.part(4, 5).read() == b'[{"id":5}]'
    assert body.record(2) == b'{"id":3}'


def test_a_body_part_reads_in_small_pieces_and_seeks_like_a_file(body):
    part = body.part(1, 4)
    length = part.seek(0, io.SEEK_END)
    assert length == len(b'[{"id":2},{"id":3},{"id":4}]')
    part.seek(0)
    pieces = []
    while piece := part.read(3):
        pieces.append(piece)
    assert b"".join(pieces) == b'[{"id":2},{"id":3},{"id":4}]'
    assert part.tell() == length
    part.seek(0)
    assert part.read() == b'[{"id":2},{"id":3},{"id":4}]'


# --- statically safe pipelines: per-record validation can be skipped ----------------------

VALID_VALUES = {
    "string": ["", 'é \u2028 " \\ \n'],
    "integer": [0, -7, 2**63 - 1],
    "number": [1.5, 3, -0.0],
    "boolean": [True, False],
    "date": ["2024-02-29"],
    "datetime": ["2024-02-29T10:00:00+02:00"],
    "json": [{"a": [1, None]}, [], "x", 12345678901234567890123],
}


def _valid_source_records(source_type: str, nullable: bool) -> list[dict]:
    records = [{"f": value} for value in VALID_VALUES[source_type]]
    return records + ([{"f": None}, {}] if nullable else [])


@pytest.mark.parametrize("source_type", TYPES)
@pytest.mark.parametrize("destination_type", TYPES)
@pytest.mark.parametrize("source_nullable", [False, True])
@pytest.mark.parametrize("destination_nullable", [False, True])
@pytest.mark.parametrize("mapped", [False, True])
def test_a_statically_safe_pipeline_maps_every_valid_source_record_to_a_valid_destination_one(
    source_type, destination_type, source_nullable, destination_nullable, mapped
):
    source_fields = [FieldSpec("f", source_type, source_nullable)]
    destination_fields = [FieldSpec("g", destination_type, destination_nullable)]
    mapping = {"g": "f"} if mapped else {}
    records = _valid_source_records(source_type, source_nullable)
    assert compile_schema(fields=source_fields).validate_python(records) == []

    safe = is_statically_safe(
        mapping=mapping, source_fields=source_fields, destination_fields=destination_fields
    )

    if safe:
        mapped_records = [map_record(record, mapping.items()) for record in records]
        assert compile_schema(fields=destination_fields).validate_python(mapped_records) == []


@pytest.mark.parametrize(
    ("source", "destination", "mapping"),
    [
        (("f", "string", False), ("g", "integer", False), {"g": "f"}),  # incompatible
        (("f", "number", False), ("g", "integer", False), {"g": "f"}),  # narrowing
        (("f", "integer", True), ("g", "integer", False), {"g": "f"}),  # may be missing
        (("f", "integer", False), ("g", "integer", False), {}),  # required, unmapped
        (("f", "integer", False), ("g", "integer", True), {"g": "f", "h": "f"}),  # unknown
        (("f", "integer", False), ("g", "integer", True), {"g": "nope"}),  # no such source
    ],
)
def test_a_pipeline_whose_records_could_break_the_destination_is_not_statically_safe(
    source, destination, mapping
):
    assert not is_statically_safe(
        mapping=mapping, source_fields=[source], destination_fields=[destination]
    )


@pytest.mark.parametrize("blocks", [[5], [1, 4], [2, 0, 3], [1, 1, 1, 1, 1]])
def test_a_body_built_in_blocks_is_the_body_built_record_by_record(settings, blocks):
    settings.DELIVERY_SPOOL_MEMORY_BYTES = 64
    records = [b'{"id":1}', '{"n":"é 🙂"}'.encode(), b"{}", b'{"id":4,"x":[1,2]}', b'"five"']
    one, blocked = BatchBody(prefix=b"{", suffix=b"}"), BatchBody(prefix=b"{", suffix=b"}")
    for sequence, raw in enumerate(records, 1):
        one.add(sequence, raw)
    at = 0
    for size in blocks:
        blocked.add_block(range(at + 1, at + size + 1), records[at : at + size])
        at += size
    assert len(blocked) == len(one) == 5
    assert list(blocked.sequences) == list(one.sequences)
    for start in range(5):
        assert blocked.record(start) == one.record(start) == records[start]
        for stop in range(start + 1, 6):
            assert blocked.part(start, stop).read() == one.part(start, stop).read()
    one.close()
    blocked.close()
