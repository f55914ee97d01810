"""RFC 9457 problem documents, as every API error answers them.

``problem`` is the product's own builder: ``tests/test_api_errors.py`` checks its members
(``type``, ``title``, ``status``) literally, so the other suites may build expectations with it.
"""

from __future__ import annotations

from typing import Any

from osmos.api import problem

PROBLEM_MEMBERS = ("type", "title", "status", "detail")

__all__ = ["PROBLEM_MEMBERS", "field_keys", "problem"]


def field_keys(body: dict[str, Any]) -> list[str]:
    """The keys of a problem beside its standard members: DRF's field keys, extra facts."""
    return [key for key in body if key not in PROBLEM_MEMBERS]
