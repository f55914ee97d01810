"""Unit tests of ingest/body.py: content types, encodings and size limits (no database)."""

from __future__ import annotations

import gzip
import zlib

import pytest

from ingest.body import (
    body_kind,
    check_declared_length,
    decode_body,
    gunzip_capped,
    is_gzip,
    validator_kind,
)
from ingest.refusals import STATUS_OF_INGEST
from osmos.api import status_of
from osmos.errors import DomainError
from tests.ingest.bombs import gzip_of_zeros


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("application/json", "json"),
        ("application/json; charset=utf-8", "json"),
        ('Application/JSON; Charset="UTF-8"', "json"),
        ("application/x-ndjson", "ndjson"),
        ("application/ndjson", "ndjson"),
        ("application/jsonl", "ndjson"),
        ("application/x-jsonlines; charset=utf-8", "ndjson"),
    ],
)
def test_supported_content_types_name_their_body_kind(content_type, kind):
    assert body_kind(content_type) == kind


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
    ],
)
def test_other_content_types_and_charsets_are_refused_with_415(content_type):
    with pytest.raises(DomainError) as refused:
        body_kind(content_type)
    assert status_of(refused.value, STATUS_OF_INGEST) == 415
    assert "Content-Type" in refused.value.detail or "charset" in refused.value.detail


def test_json_bodies_are_validated_as_array_or_object_never_sniffed_as_ndjson():
    assert validator_kind("json", b" \n\t[{}]") == "array"
    assert validator_kind("json", b'{"a": 1}\n{"a": 2}') == "object"
    assert validator_kind("ndjson", b"[1]") == "ndjson"


def test_gzip_and_identity_encodings_are_known_and_others_are_refused_with_415():
    assert is_gzip("gzip")
    assert is_gzip("X-GZIP ")
    assert not is_gzip(None)
    assert not is_gzip("identity")
    with pytest.raises(DomainError) as refused:
        is_gzip("br")
    assert status_of(refused.value, STATUS_OF_INGEST) == 415


def test_declared_length_over_the_limit_is_refused_before_reading():
    check_declared_length("1000", limit=1000)
    with pytest.raises(DomainError) as refused:
        check_declared_length("1001", limit=1000)
    assert status_of(refused.value, STATUS_OF_INGEST) == 413
    assert refused.value.body()["max_body_bytes"] == 1000


def test_a_garbled_content_length_is_refused():
    with pytest.raises(DomainError) as refused:
        check_declared_length("ten", limit=1000)
    assert status_of(refused.value, STATUS_OF_INGEST) == 400


@pytest.mark.parametrize("value", [None, ""])
def test_a_missing_content_length_is_left_to_read_body(value):
    check_declared_length(value, limit=1000)  # read_body decides: chunked or 411


def test_gzip_body_is_decompressed():
    assert (
        decode_body(gzip.compress(b'{"a": 1}'), content_encoding="gzip", limit=100) == b'{"a": 1}'
    )


def test_concatenated_gzip_members_are_one_body():
    raw = gzip.compress(b"[1,") + gzip.compress(b"2]")
    assert decode_body(raw, content_encoding="gzip", limit=100) == b"[1,2]"


def test_raw_body_over_the_limit_is_refused_with_413():
    with pytest.raises(DomainError) as refused:
        decode_body(b"x" * 101, content_encoding=None, limit=100)
    assert status_of(refused.value, STATUS_OF_INGEST) == 413


def test_decompressed_body_over_the_limit_is_refused_with_413_though_small_compressed():
    raw = gzip.compress(b" " * 10_000)
    assert len(raw) < 100
    with pytest.raises(DomainError) as refused:
        decode_body(raw, content_encoding="gzip", limit=9_999)
    assert status_of(refused.value, STATUS_OF_INGEST) == 413
    assert "decompressed" in refused.value.detail


def test_a_gzip_bomb_of_one_gibibyte_stops_at_the_limit():
    bomb = gzip_of_zeros(1024)
    assert len(bomb) < 2 * 1024 * 1024
    with pytest.raises(DomainError) as refused:
        gunzip_capped(bomb, limit=8 * 1024 * 1024)
    assert status_of(refused.value, STATUS_OF_INGEST) == 413


def test_the_test_bomb_is_a_valid_gzip_stream_of_the_announced_size():
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert len(inflater.decompress(gzip_of_zeros(3))) == 3 * 1024 * 1024
    assert inflater.eof
    assert inflater.unused_data == b""


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not gzip at all", "not valid gzip"),
        (gzip.compress(b"[1, 2, 3]")[:-12], "truncated"),
        (gzip.compress(b"[1]")[:10] + b"\xff" * 20, "corrupt"),
        (gzip.compress(b"[1]") + b"trailing garbage", "not valid gzip"),
    ],
)
def test_broken_gzip_is_refused_with_400(raw, message):
    with pytest.raises(DomainError) as refused:
        decode_body(raw, content_encoding="gzip", limit=1000)
    assert status_of(refused.value, STATUS_OF_INGEST) == 400
    assert message in refused.value.detail


def test_zero_padding_after_a_gzip_stream_is_tolerated_like_gzip_does():
    assert (
        decode_body(gzip.compress(b"[1]") + b"\0" * 8, content_encoding="gzip", limit=100) == b"[1]"
    )


@pytest.mark.parametrize("raw", [b"", b"  \n "])
def test_an_empty_body_is_refused_with_400(raw):
    with pytest.raises(DomainError) as refused:
        decode_body(raw, content_encoding=None, limit=100)
    assert status_of(refused.value, STATUS_OF_INGEST) == 400
