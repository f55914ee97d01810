"""Every schema the tests use, in one place, with the records that fit each.

Named by what they hold; suites pick the one their assertions were written against.
"""

from __future__ import annotations


def _schema(*fields: tuple[str, str, bool]) -> list[dict]:
    return [{"name": name, "type": type_, "nullable": nullable} for name, type_, nullable in fields]


# A destination of people (connectors tests): a nullable integer and a datetime.
CONTACTS = _schema(
    ("email", "string", False), ("age", "integer", True), ("signed_up", "datetime", False)
)
# Orders with an optional amount (ingest tests).
ORDERS = _schema(("id", "integer", False), ("email", "string", False), ("amount", "number", True))
# Orders with a required amount and an optional note; mapped onto ``CRM`` (pipeline tests).
ORDERS_NOTED = _schema(
    ("id", "integer", False),
    ("email", "string", False),
    ("amount", "number", False),
    ("note", "string", True),
)
# Orders whose amount is required (page tests).
ORDERS_STRICT = _schema(
    ("id", "integer", False), ("email", "string", False), ("amount", "number", False)
)
# A CRM destination: the amount arrives as "total" (page and pipeline tests).
CRM = _schema(("id", "integer", False), ("email", "string", False), ("total", "number", False))
# The smallest useful schema (reliability tests).
IDS = _schema(("id", "integer", False), ("email", "string", False))


def order_records(count: int, *, start: int = 0) -> list[dict]:
    """Records of ``ORDERS`` (and ``ORDERS_STRICT``) with ids ``start`` … ``start+count-1``."""
    return [
        {"id": i, "email": f"user{i}@example.com", "amount": i * 1.5}
        for i in range(start, start + count)
    ]


def id_records(count: int, *, start: int = 1) -> list[dict]:
    """Records of ``IDS`` with ids ``start`` … ``start+count-1``."""
    return [{"id": i, "email": f"user{i}@example.com"} for i in range(start, start + count)]


def noted_order_records(count: int, *, start: int = 1) -> list[dict]:
    """Records of ``ORDERS_NOTED`` with ids ``start`` … ``start+count-1`` (no note)."""
    return [
        {"id": i, "email": f"user{i}@example.com", "amount": i * 1.5, "note": None}
        for i in range(start, start + count)
    ]
