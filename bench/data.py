"""The benchmark records: 10 fields of mixed types, about 200 bytes of JSON each.

Record ``i`` has ``"id": i``, so a dataset is identified by its id range, and the sink can
fail chosen records by id.
"""

from __future__ import annotations

from typing import Any

import orjson

FIELDS: list[dict[str, Any]] = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
    {"name": "full name", "type": "string", "nullable": False},
    {"name": "score", "type": "number", "nullable": False},
    {"name": "active", "type": "boolean", "nullable": False},
    {"name": "birthday", "type": "date", "nullable": True},
    {"name": "updated_at", "type": "datetime", "nullable": False},
    {"name": "tags", "type": "json", "nullable": True},
    {"name": "nickname", "type": "string", "nullable": True},
    {"name": "visits", "type": "integer", "nullable": True},
]


def record(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "email": f"user{i}@example.com",
        "full name": f"User Number {i}",
        "score": i * 1.25,
        "active": i % 2 == 0,
        "birthday": f"19{i % 90 + 10}-0{i % 9 + 1}-1{i % 9}",
        "updated_at": f"2024-05-01T12:{i % 60:02d}:00+02:00",
        "tags": ["a", "b"] if i % 3 else {"k": i},
        "nickname": None if i % 4 else f"nick{i}",
        "visits": i % 1000,
    }


def records(start: int, count: int) -> list[dict[str, Any]]:
    return [record(i) for i in range(start, start + count)]


def array_body(start: int, count: int) -> bytes:
    """A JSON array of records ``start … start + count - 1``."""
    return orjson.dumps(records(start, count))


def record_lines(start: int, count: int) -> list[bytes]:
    """Each record as its own compact JSON bytes."""
    dumps = orjson.dumps
    return [dumps(record(i)) for i in range(start, start + count)]
