"""What the multi-host tests share: a host's environment, the world, and the contract."""

from __future__ import annotations

import json
import os
import threading
from collections import defaultdict
from pathlib import Path

from django.db import connection

from ingest.services import records_ingest
from pipelines.models import ChunkState, RecordFailure, Run, RunChunk, RunState
from tests.reliability.processes import child_env
from tests.support.factories import build_world
from tests.support.schemas import id_records as schema_records

HEARTBEAT_TIMEOUT = 5
SKEWED_CLOCK = str(Path(__file__).resolve().parent / "skewed_clock")


def host_env(broker, database: str, broker_address: str, **extra: str) -> dict[str, str]:
    """The environment of a product process on a host: PostgreSQL and the broker reached at
    their addresses on the test network."""
    db = connection.settings_dict
    return child_env(
        DATABASE_URL=f"postgres://{db['USER']}@{database}:{db['PORT'] or 5432}/{db['NAME']}",
        DRAMATIQ_BROKER_URL=broker.url_at(broker_address),
        OUTBOUND_ALLOWED_NETWORKS="198.18.77.0/24",
        RUN_HEARTBEAT_TIMEOUT_SECONDS=str(HEARTBEAT_TIMEOUT),
        # A cut-off host's gate slots come back after the lease (30 s by default).
        OUTBOUND_GATE_LEASE_SECONDS="2",
        SCHEDULER_INTERVAL_SECONDS="0.5",
        RUN_ENQUEUE_GRACE_SECONDS="1",
        RUN_REQUEUE_AFTER_SECONDS="10",
        DELIVERY_SINGLE_CHUNK_RECORDS="20",
        DELIVERY_SINGLE_CONCURRENCY="2",
        **extra,
    )


def skewed(env: dict[str, str], seconds: float) -> dict[str, str]:
    """``env`` for a process whose wall clock is ``seconds`` off (skewed_clock/sitecustomize.py);
    its monotonic clock runs true, as a real host's does."""
    path = os.pathsep.join(p for p in (SKEWED_CLOCK, env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, "OSMOS_TEST_CLOCK_SKEW": str(seconds)}


def world(org_a, member, sink_url: str, *, write_mode: str, records: int, **destination):
    """A pipeline from a source holding records with ids 1..records to ``sink_url``."""
    made = build_world(org_a, member_user=member, sink_url=sink_url)
    records_ingest(
        source=made.source.source,
        body=json.dumps(schema_records(records - 50, start=51)).encode(),
        content_type="application/json",
        content_encoding=None,
        idempotency_key=None,
    )
    target = made.destination.destination
    target.write_mode = write_mode
    target.batch_size = 5
    target.timeout_seconds = 3
    for name, value in destination.items():
        setattr(target, name, value)
    target.save()
    return made


def assert_contract(run: Run, requests, records: int) -> None:
    """The run succeeded, every record delivered once in the counters, every record reached
    the customer's API, and a record sent again carried the same Idempotency-Key."""
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.state
    assert not RecordFailure.objects.filter(run=run).exists()
    assert (run.records_total, run.records_delivered, run.records_failed) == (records, records, 0)
    chunk_sum = sum(RunChunk.objects.filter(run=run).values_list("delivered", flat=True))
    assert chunk_sum == records, "a chunk was confirmed twice"
    keys: dict[int, set[str]] = defaultdict(set)
    for request in requests:
        for record in request.records():
            keys[record["id"]].add(request.header("Idempotency-Key"))
    assert sorted(keys) == list(range(1, records + 1)), "a record never reached the sink"
    assert all(len(k) == 1 for k in keys.values()), "a record was sent again with a new key"


class ConfirmedWatch:
    """Proves that a confirmed chunk is never sent again (batch mode: a chunk is confirmed
    when it is ``done``). A thread reads the run's done chunks, then how many requests the
    sink has received, again and again: a request that arrived after a read that found its
    chunk done would be a confirmed chunk sent again."""

    def __init__(self, run_id, sink) -> None:
        self.run_id, self.sink = run_id, sink
        self.snapshots: list[tuple[set[str], int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ConfirmedWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        try:
            while not self._stop.wait(0.2):
                done = RunChunk.objects.filter(run_id=self.run_id, state=ChunkState.DONE)
                keys = set(done.values_list("idempotency_key", flat=True))
                self.snapshots.append((keys, len(self.sink.requests)))
        finally:
            connection.close()

    def assert_never_resent(self) -> None:
        requests = self.sink.requests
        sent = {r.header("Idempotency-Key") for r in requests}
        chunks = set(
            RunChunk.objects.filter(run_id=self.run_id).values_list("idempotency_key", flat=True)
        )
        assert sent <= chunks, "a request's key is no chunk's: this watch would prove nothing"
        assert len(self.snapshots) > 10
        assert any(keys for keys, _ in self.snapshots), "no chunk was ever seen confirmed"
        resent = {
            r.header("Idempotency-Key")
            for keys, seen in self.snapshots
            for r in requests[seen:]
            if r.header("Idempotency-Key") in keys
        }
        assert not resent, f"confirmed chunks sent again: {sorted(resent)}"
