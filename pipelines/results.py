"""Per-record results in a destination's answer (SPEC §5.3, ``response_format: per_record``).

The body is read by ``osmos.outbound.results.parse_rejections``; this module turns what it
finds into the failure reasons the engine records. A body that says nothing readable counts
as the status says: every record delivered.
"""

from __future__ import annotations

from collections.abc import Iterable

from osmos.outbound.client import Response
from osmos.outbound.results import parse_rejections

REJECTED_PREFIX = "Rejected by the destination: "


def rejected_records(
    response: Response, *, record_count: int, secrets: Iterable[str] = ()
) -> list[tuple[int, str]]:
    """``(index in the request's array, reason)`` of each record the answer rejects, in
    order; empty when it rejects none or cannot be read. ``secrets``: the destination's
    header values, scrubbed from the reasons it echoes."""
    found = parse_rejections(response.body, record_count=record_count, secrets=secrets)
    return [(index, REJECTED_PREFIX + reason) for index, reason in found or []]
