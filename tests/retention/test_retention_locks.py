"""Retention on PostgreSQL at scale: short locks, and ingest never waits for a purge.

``OSMOS_RETENTION_ROWS`` sets the size (default 200,000; docs/operations.md gives the figures
of a 1,000,000-row run made with it).
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from connectors.services import connector_create
from ingest.models import Record
from ingest.services import records_ingest
from pipelines.models import Pipeline
from pipelines.retention import retention_purge

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

SCHEMA = [{"name": "id", "type": "integer", "nullable": False}]
ROWS = int(os.environ.get("OSMOS_RETENTION_ROWS", "200000"))
PER_REQUEST = 100_000


def ingest(source, first: int, count: int) -> None:
    body = json.dumps([{"id": i} for i in range(first, first + count)]).encode()
    result = records_ingest(
        source=source.source,
        body=body,
        content_type="application/json",
        content_encoding=None,
        idempotency_key=None,
    )
    assert result.body["accepted"] == count, result.body


def test_purging_many_rows_holds_no_lock_long_and_never_blocks_ingest(org_a, settings):
    if connection.vendor != "postgresql":
        pytest.skip("measured on PostgreSQL (the production database)")
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    source = connector_create(
        organization=org_a, name="big", direction="source", fields=SCHEMA
    ).connector
    destination = connector_create(
        organization=org_a,
        name="dst",
        direction="destination",
        fields=SCHEMA,
        destination={"url": "http://127.0.0.1:9/hook"},
    ).connector
    for first in range(0, ROWS, PER_REQUEST):
        ingest(source, first, min(PER_REQUEST, ROWS - first))
    Record.objects.filter(connector=source).update(received_at=timezone.now() - timedelta(days=90))
    # The backdating left a dead version of every row (records are never updated in the
    # product): vacuum them as autovacuum would, so the purge meets the steady state.
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {Record._meta.db_table}")
    Pipeline.objects.create(
        organization=org_a, name="p", source=source, destination=destination, cursor=ROWS
    )

    latencies: list[float] = []
    stop = threading.Event()

    def keep_ingesting() -> None:
        try:
            n = ROWS
            while not stop.is_set():
                started = time.monotonic()
                ingest(source, n, 50)
                latencies.append(time.monotonic() - started)
                n += 50
                time.sleep(0.05)
        finally:
            connection.close()

    writer = threading.Thread(target=keep_ingesting)
    writer.start()
    started = time.monotonic()
    try:
        report = retention_purge(budget_seconds=600)
    finally:
        stop.set()
        writer.join()
    elapsed = time.monotonic() - started
    print(
        f"\npurged {report.deleted.get('records', 0)} records in {elapsed:.1f} s; longest batch "
        f"{report.longest_batch_seconds * 1000:.0f} ms; {len(latencies)} ingests meanwhile, "
        f"slowest {max(latencies) * 1000:.0f} ms"
    )
    assert report.complete
    assert report.deleted["records"] == ROWS - settings.INGEST_SAMPLES_REQUIRED
    assert report.longest_batch_seconds < 1.0
    assert latencies, "ingest ran during the purge"
    assert max(latencies) < 1.0
