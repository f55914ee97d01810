"""Per-record results in a destination's answer (SPEC §5.3; pure function)."""

from __future__ import annotations

import json

import pytest

from osmos.outbound.results import MAX_REASON_LENGTH, NO_REASON, parse_rejections


def body(value) -> bytes:
    return json.dumps(value).encode()


def test_rejected_records_are_returned_with_their_reasons_by_index():
    answer = body(
        {"rejected": [{"index": 2, "reason": "bad email"}, {"index": 0, "reason": "dup"}]}
    )

    assert parse_rejections(answer, record_count=3) == [(0, "dup"), (2, "bad email")]


def test_an_empty_rejected_array_rejects_nothing():
    assert parse_rejections(body({"rejected": [], "accepted": 3}), record_count=3) == []


@pytest.mark.parametrize(
    "answer",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        body([1, 2]),
        body({"ok": True}),
        body({"rejected": "all"}),
        body(None),
    ],
)
def test_a_body_without_a_rejected_array_leaves_the_status_to_decide(answer):
    assert parse_rejections(answer, record_count=3) is None


def test_out_of_range_and_malformed_indexes_are_ignored():
    answer = body(
        {
            "rejected": [
                {"index": -1, "reason": "a"},
                {"index": 3, "reason": "b"},
                {"index": "1", "reason": "c"},
                {"index": True, "reason": "d"},
                {"index": 1.5, "reason": "e"},
                {"reason": "f"},
                "g",
                {"index": 1.0, "reason": "h"},
            ]
        }
    )

    assert parse_rejections(answer, record_count=3) == [(1, "h")]


def test_a_duplicate_index_fails_its_record_once_with_the_first_reason():
    answer = body({"rejected": [{"index": 0, "reason": "first"}, {"index": 0, "reason": "second"}]})

    assert parse_rejections(answer, record_count=1) == [(0, "first")]


def test_reasons_are_cleaned_bounded_and_defaulted():
    answer = body(
        {
            "rejected": [
                {"index": 0},
                {"index": 1, "reason": 42},
                {"index": 2, "reason": "line\nbreak"},
                {"index": 3, "reason": "x" * 5000},
            ]
        }
    )

    result = dict(parse_rejections(answer, record_count=4))

    assert result[0] == NO_REASON
    assert result[1] == NO_REASON
    assert result[2] == "line break"
    assert len(result[3]) == MAX_REASON_LENGTH


def test_a_secret_echoed_in_a_reason_is_scrubbed():
    answer = body({"rejected": [{"index": 0, "reason": "token Bearer abc-123-xyz is not ours"}]})

    [(_index, reason)] = parse_rejections(answer, record_count=1, secrets=["Bearer abc-123-xyz"])

    assert "abc-123-xyz" not in reason
