"""Splitting a request body into raw records: one object, a JSON array, or NDJSON.

Only syntax is checked here (one C call per body on the fast path); the records' content is
the validator's job (``connectors.record_validator``). Errors name the line and column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

import msgspec
import orjson

BodyKind = Literal["array", "object", "ndjson", "auto"]


class MalformedBody(ValueError):
    """The body is not JSON, or not one object / an array / NDJSON (ingest answers 400)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


_RAW_ONE = msgspec.json.Decoder(msgspec.Raw)
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
RAW_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])
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


def split_body(body: bytes, *, kind: BodyKind) -> tuple[list[bytes], bytes]:
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
