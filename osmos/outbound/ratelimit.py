"""How long a destination asks us to wait, from its response headers (pure functions).

Honoured, in this order (`wait_from_headers`):
- `Retry-After` (RFC 9110): delay-seconds or an HTTP date;
- the IETF RateLimit headers, in the shapes the drafts have had:
  `RateLimit: "default";r=0;t=5` (structured field, draft 07+),
  `RateLimit: limit=100, remaining=0, reset=5` (drafts 03-06),
  `RateLimit-Remaining: 0` + `RateLimit-Reset: 5` (drafts 00-02);
  `RateLimit-Policy` only names the quota (`100;w=60`) and never asks for a wait by itself;
- the common `X-RateLimit-Remaining` + `X-RateLimit-Reset`, where reset is delta seconds
  (Twitter v1 aside, most APIs), a Unix time in seconds (GitHub) or milliseconds, or an HTTP
  date; `X-RateLimit-Reset-After` (delta seconds) is preferred when present.

A wait is asked only when `remaining` is 0; `rate_limit` also returns the quota still left,
which the destination gate uses to pace sending before it runs out. Every wait is at least 0
and at most settings.DELIVERY_RETRY_AFTER_CAP_SECONDS.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

DEFAULT_RETRY_AFTER_CAP_SECONDS = 86400.0
# A reset larger than this is a point in time, not a delay (2001-09-09 in Unix seconds).
_EPOCH_SECONDS_FLOOR = 1_000_000_000
_EPOCH_MILLISECONDS_FLOOR = 1_000_000_000_000
_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """What a response says about the destination's quota: requests `remaining` in the current
    window, which resets in `reset_after` seconds (each None when not said)."""

    remaining: int | None
    reset_after: float | None


def cap_seconds() -> float:
    return float(
        getattr(settings, "DELIVERY_RETRY_AFTER_CAP_SECONDS", DEFAULT_RETRY_AFTER_CAP_SECONDS)
    )


def _bounded(seconds: float) -> float:
    return min(max(seconds, 0.0), cap_seconds())


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return _bounded(float(value))
    when = _http_date(value)
    if when is None:
        return None
    return _bounded((when - (now or datetime.now(UTC))).total_seconds())


def parse_reset(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds until a rate-limit window resets: delta seconds, Unix seconds or milliseconds,
    or an HTTP date; None when unreadable. `now` is a Unix time (tests)."""
    if not value:
        return None
    match = _NUMBER.fullmatch(value)
    current = time.time() if now is None else now
    if match is None:
        when = _http_date(value.strip())
        return None if when is None else _bounded(when.timestamp() - current)
    number = float(match.group(1))
    if not math.isfinite(number):
        return None
    if number >= _EPOCH_MILLISECONDS_FLOOR:
        return _bounded(number / 1000 - current)
    if number >= _EPOCH_SECONDS_FLOOR:
        return _bounded(number - current)
    return _bounded(number)


def rate_limit(headers: Mapping[str, str] | None, *, now: float | None = None) -> RateLimit:
    """The quota state a response reports (`headers` with lower-case names)."""
    if not headers:
        return RateLimit(None, None)
    combined = headers.get("ratelimit")
    if combined:
        parsed = _parse_combined(combined, now=now)
        if parsed.remaining is not None:
            return parsed
    for prefix in ("ratelimit-", "x-ratelimit-"):
        remaining = _int(headers.get(prefix + "remaining"))
        if remaining is None:
            continue
        reset = parse_reset(headers.get(prefix + "reset-after"), now=now)
        if reset is None:
            reset = parse_reset(headers.get(prefix + "reset"), now=now)
        return RateLimit(remaining, reset)
    return RateLimit(None, None)


def wait_from_headers(
    status: int | None, headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds the destination asked us to wait before the next request, or None.

    `Retry-After` counts on 429 and 503 (RFC 9110 gives it no meaning on a success) and on any
    other 5xx or 408 that carries it; a quota with `remaining` 0 and a known reset counts on
    any answer.
    """
    if headers is None:
        return None
    if status is not None and (status in (408, 425, 429) or 500 <= status < 600):
        asked = parse_retry_after(
            headers.get("retry-after"),
            now=None if now is None else datetime.fromtimestamp(now, UTC),
        )
        if asked is not None:
            return asked
    quota = rate_limit(headers, now=now)
    if quota.remaining is not None and quota.remaining <= 0 and quota.reset_after is not None:
        return quota.reset_after
    return None


def _parse_combined(value: str, *, now: float | None) -> RateLimit:
    """`RateLimit` in draft 03-06 (`limit=100, remaining=0, reset=5`) or draft 07+
    (`"policy";r=0;t=5`; several policies: the one with the least remaining wins)."""
    remaining: int | None = None
    reset: float | None = None
    for member in value.split(","):
        member = member.strip()
        if member.startswith('"') or ";" in member:  # draft 07+: one item per policy
            params = dict(_param(p) for p in member.split(";")[1:])
            item_remaining = _int(params.get("r"))
            if item_remaining is not None and (remaining is None or item_remaining < remaining):
                remaining = item_remaining
                reset = parse_reset(params.get("t"), now=now) if "t" in params else None
            continue
        key, _, raw = member.partition("=")
        key = key.strip().lower()
        if key == "remaining":
            remaining = _int(raw)
        elif key == "reset":
            reset = parse_reset(raw, now=now)
    return RateLimit(remaining, reset)


def _param(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    return key.strip().lower(), value.strip().strip('"')


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    match = _NUMBER.fullmatch(value)
    if match is None:
        return None
    number = float(match.group(1))
    return int(number) if math.isfinite(number) else None


def _http_date(value: str) -> datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
