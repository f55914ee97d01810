"""Limits no tenant can abuse at the ingest endpoint (SPEC §4 quotas).

- ``INGEST_REQUESTS_PER_SECOND``: requests per source per second (a fixed one-second window).
- ``ORG_MAX_STORED_RECORDS``: records stored per organization, all sources together.

Over either, the request answers ``429`` with ``Retry-After`` and ``RateLimit-*`` headers and
stores nothing. 0 turns a limit off.

Counts live in Django's cache (``CACHE_URL``): Redis in production, so every web process of
every host shares them; the embedded default (local memory) is in-process, which is exact for
its single web process. The stored-records total is read from the database (the sum of the
sources' counters, one indexed query) and kept in the cache for a few seconds, raised by each
request this process stores: with several processes, an organization may overshoot its quota
by at most what they store in ``ORG_STORED_RECORDS_CACHE_SECONDS``.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db.models import Sum

from connectors.models import SourceSettings
from osmos.errors import TooManyRequests

_RATE_KEY = "osmos:ingest-rate:{}:{}"
_STORED_KEY = "osmos:org-stored:{}"


def check_request_rate(*, connector_id: uuid.UUID, now: float | None = None) -> None:
    """Count one request to this source; raises ``TooManyRequests`` over the limit."""
    limit = settings.INGEST_REQUESTS_PER_SECOND
    if not limit:
        return
    now = time.time() if now is None else now
    second = math.floor(now)
    key = _RATE_KEY.format(connector_id, second)
    cache.add(key, 0, timeout=5)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr (a cache eviction): count afresh
        cache.add(key, 1, timeout=5)
        count = 1
    if count <= limit:
        return
    raise TooManyRequests(
        f"Too many requests to this source: at most {limit} per second. Nothing was stored; "
        "retry after the time in Retry-After.",
        limit_per_second=limit,
        headers={
            "Retry-After": "1",
            "RateLimit-Limit": str(limit),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": "1",
            "RateLimit-Policy": f"{limit};w=1",
        },
    )


def check_storage_quota(*, organization_id: uuid.UUID, adding: int) -> None:
    """Refuse (``TooManyRequests``) storing ``adding`` more records over the quota."""
    quota = settings.ORG_MAX_STORED_RECORDS
    if not quota:
        return
    stored = _stored_records(organization_id)
    if stored + adding <= quota:
        return
    raise TooManyRequests(
        f"This organization stores {stored:,} records; its quota is {quota:,}, so these "
        f"{adding:,} records cannot be stored. Nothing was stored; delete sources you no "
        "longer need or ask for a larger quota.",
        stored_records=stored,
        max_stored_records=quota,
        headers={
            "Retry-After": "3600",
            "RateLimit-Limit": str(quota),
            "RateLimit-Remaining": str(max(0, quota - stored)),
            "RateLimit-Reset": "3600",
        },
    )


def count_stored(*, organization_id: uuid.UUID, added: int) -> None:
    """Raise the cached total after a request stored ``added`` records."""
    with contextlib.suppress(ValueError):  # not cached: the next check reads the database
        cache.incr(_STORED_KEY.format(organization_id), added)


def _stored_records(organization_id: uuid.UUID) -> int:
    key = _STORED_KEY.format(organization_id)
    stored = cache.get(key)
    if stored is None:
        stored = (
            SourceSettings.objects.filter(connector__organization_id=organization_id).aggregate(
                total=Sum("record_count")
            )["total"]
            or 0
        )
        cache.set(key, stored, timeout=settings.ORG_STORED_RECORDS_CACHE_SECONDS)
    return stored
