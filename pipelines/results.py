"""Per-record results in a destination's answer (SPEC §5.3, ``response_format: per_record``).

A 2xx answer whose JSON body has a top-level ``"rejected"`` array of ``{"index", "reason"}``
fails exactly those records of the request; anything else (no body, not JSON, no array)
counts as the status says: every record delivered.
"""

from __future__ import annotations

from osmos.outbound.client import Response

REJECTED_PREFIX = "Rejected by the destination: "
REASON_MAX_CHARS = 1000


def rejected_records(response: Response, *, record_count: int) -> list[tuple[int, str]]:
    """``(index in the request's array, reason)`` of each record the answer rejects, each
    index once, in order; empty when it rejects none or cannot be read."""
    rejections = _parse(response, record_count=record_count)
    return [(index, REJECTED_PREFIX + reason) for index, reason in rejections or []]


def _parse(response: Response, *, record_count: int) -> list[tuple[int, str]] | None:
    from osmos.outbound import client

    parse = getattr(client, "parse_rejections", None)
    body = getattr(response, "body", None)
    if body is None:
        body = response.excerpt.encode()
    if parse is not None:
        return parse(body, record_count=record_count)
    return _parse_locally(body, record_count=record_count)


def _parse_locally(body: bytes, *, record_count: int) -> list[tuple[int, str]] | None:
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("rejected"), list):
        return None
    found: dict[int, str] = {}
    for item in data["rejected"]:
        if not isinstance(item, dict):
            continue
        index, reason = item.get("index"), item.get("reason")
        if isinstance(index, bool) or not isinstance(index, int):
            continue
        if 0 <= index < record_count and index not in found:
            found[index] = str(reason if reason is not None else "no reason given")[
                :REASON_MAX_CHARS
            ]
    return sorted(found.items())
