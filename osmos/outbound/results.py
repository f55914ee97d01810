"""Per-record results in a destination's answer (SPEC §5.3, `response_format: per_record`).

A response (2xx or 207) whose JSON body is an object with a top-level `"rejected"` array of
`{"index": <position in the request's array>, "reason": "<text>"}` rejects exactly those
records; the others are delivered. `parse_rejections` reads such a body:

- the body is not JSON, not an object, has no `rejected` key, or `rejected` is not an array:
  None (the status alone decides, as for `response_format: none`);
- an item that is not an object, or whose `index` is not a whole number (booleans and
  numbers with a fraction included): ignored;
- an `index` outside 0..record_count-1: ignored (it names no record of this request);
- the same `index` twice: the first reason wins (a record fails once);
- a missing, empty or non-text `reason`: "no reason given"; a reason is cut to
  MAX_REASON_LENGTH characters and has its control characters replaced by spaces.

The result is sorted by index. Reasons come from the destination: pass the destination's
header values as `secrets` so that an echoed secret is scrubbed (see `osmos.outbound.scrub`).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from osmos.outbound.scrub import scrub

MAX_REASON_LENGTH = 500
NO_REASON = "no reason given"


def parse_rejections(
    body: bytes, *, record_count: int, secrets: Iterable[str] = ()
) -> list[tuple[int, str]] | None:
    """[(index, reason)] of the records the body rejects, or None (see the module docstring)."""
    try:
        document = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    rejected = document.get("rejected")
    if not isinstance(rejected, list):
        return None
    secrets = list(secrets)
    reasons: dict[int, str] = {}
    for item in rejected:
        if not isinstance(item, dict):
            continue
        index = item.get("index")
        if isinstance(index, float) and index.is_integer():
            index = int(index)
        if isinstance(index, bool) or not isinstance(index, int):
            continue
        if not 0 <= index < record_count or index in reasons:
            continue
        reasons[index] = _reason(item.get("reason"), secrets)
    return sorted(reasons.items())


def _reason(value: object, secrets: list[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        return NO_REASON
    text = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in value).strip()
    return scrub(text, secrets)[:MAX_REASON_LENGTH]
