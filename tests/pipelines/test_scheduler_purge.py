"""The scheduler's tick also purges ingest idempotency keys past their 24 hours."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from ingest.models import IdempotencyKey
from ingest.services import records_ingest
from pipelines.scheduler import scheduler_tick
from tests.support.delivery import make_records, make_source

pytestmark = pytest.mark.django_db


def test_a_tick_purges_expired_idempotency_keys_and_keeps_live_ones(org_a):
    source = make_source(org_a)
    for n, key in enumerate(("old", "new")):
        records_ingest(
            source=source.source,
            body=json.dumps(make_records(1, start=100 + n)).encode(),
            content_type="application/json",
            content_encoding=None,
            idempotency_key=key,
        )
    IdempotencyKey.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(hours=24, seconds=1)
    )
    report = scheduler_tick()
    assert report.idempotency_keys_purged == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
