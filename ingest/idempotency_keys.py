"""Ingest idempotency keys (SPEC §4): a successful request's answer, remembered per
connector for ``settings.INGEST_IDEMPOTENCY_TTL_SECONDS`` (``ingest.services`` replays it)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from connectors.models import SourceSettings
from ingest.models import IdempotencyKey


def live_key(*, connector_id: uuid.UUID, key: str, now: datetime) -> IdempotencyKey | None:
    cutoff = now - timedelta(seconds=settings.INGEST_IDEMPOTENCY_TTL_SECONDS)
    return IdempotencyKey.objects.filter(
        connector_id=connector_id, key=key, created_at__gte=cutoff
    ).first()


def remember(
    source: SourceSettings,
    *,
    organization_id: uuid.UUID,
    key: str,
    request_hash: str,
    now: datetime,
    answer: dict[str, Any],
) -> None:
    # An expired row with the same key may still be there (purge runs separately).
    IdempotencyKey.objects.filter(connector_id=source.connector_id, key=key).delete()
    IdempotencyKey.objects.create(
        organization_id=organization_id,
        connector_id=source.connector_id,
        key=key,
        created_at=now,
        request_hash=request_hash,
        response_status=200,
        response_body=answer,
    )


def idempotency_keys_purge(*, now: datetime | None = None) -> int:
    """Delete the idempotency keys older than the TTL, of every connector; returns how many.

    Expired keys are already ignored by ingest, so this only reclaims space: run it from cron
    or the scheduler (``manage.py purge_idempotency_keys``).
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.INGEST_IDEMPOTENCY_TTL_SECONDS)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
