"""Every schema the tests use, in one place, with the records that fit each.

Named by what they hold; suites pick the one their assertions were written against.
"""

from __future__ import annotations

# A destination of people (connectors tests): a nullable integer and a datetime.
CONTACTS = [
    {"name": "email", "type": "string", "nullable": False},
    {"name": "age", "type": "integer", "nullable": True},
    {"name": "signed_up", "type": "datetime", "nullable": False},
]
# Orders with an optional amount (ingest tests).
ORDERS = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
    {"name": "amount", "type": "number", "nullable": True},
]
# Orders whose amount is required (page tests).
ORDERS_STRICT = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
    {"name": "amount", "type": "number", "nullable": False},
]
# A CRM destination: the amount arrives as "total" (page and pipeline tests).
CRM = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
    {"name": "total", "type": "number", "nullable": False},
]
# The smallest useful schema (reliability tests).
IDS = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
]


def order_records(count: int, *, start: int = 0) -> list[dict]:
    """Records of ``ORDERS`` (and ``ORDERS_STRICT``) with ids ``start`` … ``start+count-1``."""
    return [
        {"id": i, "email": f"user{i}@example.com", "amount": i * 1.5}
        for i in range(start, start + count)
    ]


def id_records(count: int, *, start: int = 1) -> list[dict]:
    """Records of ``IDS`` with ids ``start`` … ``start+count-1``."""
    return [{"id": i, "email": f"user{i}@example.com"} for i in range(start, start + count)]
