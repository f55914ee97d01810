"""RFC 9457 problem documents, as every API error answers them."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

PROBLEM_MEMBERS = ("type", "title", "status", "detail")


def problem(status: int, detail: str, **members: Any) -> dict[str, Any]:
    """The whole body the API answers for an error."""
    return {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **members,
    }


def field_keys(body: dict[str, Any]) -> list[str]:
    """The keys of a problem beside its standard members: DRF's field keys, extra facts."""
    return [key for key in body if key not in PROBLEM_MEMBERS]
