"""Faults across hosts: worker hosts in network namespaces cut off from PostgreSQL or the
broker mid-run, and healed (issue 17; the harness is tests/multihost/netns.py).

Each test asserts the contract at the end: the run finished, every record is accounted for
(delivered + failed = total, nothing failed here), every record reached the customer's API,
and a record sent again carried the same Idempotency-Key. A host's late confirmations after
its lease was taken must be refused: the counters would exceed the total otherwise.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict

import pytest
from django.db import connection

from ingest.services import records_ingest
from pipelines.models import RecordFailure, Run, RunChunk, RunState
from pipelines.services import run_create
from tests.reliability.processes import child_env, wait_for
from tests.support.factories import build_world
from tests.support.schemas import id_records as schema_records
from tests.support.sink import Answer, Sink

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.reliability]

HEARTBEAT_TIMEOUT = 5


def _host_env(network, own_redis, database: str, broker: str, **extra: str) -> dict[str, str]:
    db = connection.settings_dict
    return child_env(
        DATABASE_URL=f"postgres://{db['USER']}@{database}:{db['PORT'] or 5432}/{db['NAME']}",
        DRAMATIQ_BROKER_URL=f"redis://{broker}:{own_redis.port}/0",
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


def _world(org_a, member, sink_url: str, *, write_mode: str, records: int):
    world = build_world(org_a, member_user=member, sink_url=sink_url)
    records_ingest(
        source=world.source.source,
        body=json.dumps(schema_records(records - 50, start=51)).encode(),
        content_type="application/json",
        content_encoding=None,
        idempotency_key=None,
    )
    destination = world.destination.destination
    destination.write_mode = write_mode
    destination.batch_size = 5
    destination.timeout_seconds = 3
    destination.save()
    return world


def _assert_contract(run: Run, requests, records: int) -> None:
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


@pytest.mark.parametrize("write_mode", ["batch", "single"])
def test_a_host_cut_off_from_postgres_mid_run_loses_the_run_to_another_host(
    org_a, member, network, own_redis, children, write_mode
):
    if connection.vendor != "postgresql":
        pytest.skip("the hosts share the test database over the network: PostgreSQL only")
    records = 200
    database = network.relay(connection.settings_dict["PORT"] or 5432)
    broker = network.relay(own_redis.port)
    a, b = network.add_host("a"), network.add_host("b")
    with Sink(lambda _r: Answer(200, b"{}", delay=0.03)) as sink:
        api = network.relay(sink.port)
        env = _host_env(network, own_redis, database, broker)
        world = _world(
            org_a, member, f"http://{api}:{sink.port}/hook", write_mode=write_mode, records=records
        )
        worker = [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"]
        scheduler = [sys.executable, "manage.py", "run_scheduler"]
        # The scheduler (on b) hands the run to the broker; only a's worker is there to take it.
        children.start_command(network.command(b, scheduler), env, "scheduler-b")
        children.start_command(network.command(a, worker), env, "worker-a")
        run = run_create(pipeline=world.pipeline, trigger="api")
        try:
            wait_for(lambda: len(sink.requests) >= 15, timeout=60, what="host a sending")
            network.cut(a, database)
            cut_at = time.monotonic()
            children.start_command(network.command(b, worker), env, "worker-b")
            wait_for(
                lambda: Run.objects.get(pk=run.pk).attempts >= 2,
                timeout=60,
                what="host b to take the run over",
            )
            assert time.monotonic() - cut_at >= HEARTBEAT_TIMEOUT - 1
            network.heal(a)  # host a comes back while b delivers: its confirmations are late
            wait_for(
                lambda: Run.objects.get(pk=run.pk).finished_at is not None,
                timeout=120,
                what="the run to finish",
            )
            time.sleep(3)  # room for host a's late writes, which must be refused
        except AssertionError:
            raise AssertionError(children.logs()) from None
        _assert_contract(run, sink.requests, records)


def test_a_host_cut_off_from_the_broker_mid_run_still_finishes_it(
    org_a, member, network, own_redis, children
):
    if connection.vendor != "postgresql":
        pytest.skip("the hosts share the test database over the network: PostgreSQL only")
    records = 150
    database = network.relay(connection.settings_dict["PORT"] or 5432)
    broker = network.relay(own_redis.port)
    a, b = network.add_host("a"), network.add_host("b")
    with Sink(lambda _r: Answer(200, b"{}", delay=0.03)) as sink:
        api = network.relay(sink.port)
        env = _host_env(network, own_redis, database, broker)
        world = _world(
            org_a, member, f"http://{api}:{sink.port}/hook", write_mode="batch", records=records
        )
        scheduler = [sys.executable, "manage.py", "run_scheduler"]
        worker = [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"]
        children.start_command(network.command(b, scheduler), env, "scheduler-b")
        children.start_command(network.command(a, worker), env, "worker-a")
        run = run_create(pipeline=world.pipeline, trigger="api")
        try:
            wait_for(lambda: len(sink.requests) >= 5, timeout=60, what="host a sending")
            # a keeps its database and the customer's API: it goes on with the run it holds
            # (heartbeats in PostgreSQL), although it can neither ack nor take messages.
            network.cut(a, broker)
            children.start_command(network.command(b, worker), env, "worker-b")
            wait_for(
                lambda: Run.objects.get(pk=run.pk).finished_at is not None,
                timeout=120,
                what="the run to finish",
            )
            network.heal(a)
            time.sleep(2)
        except AssertionError:
            raise AssertionError(children.logs()) from None
        _assert_contract(run, sink.requests, records)


def test_the_broker_restarted_mid_run_loses_no_record(org_a, member, network, own_redis, children):
    if connection.vendor != "postgresql":
        pytest.skip("the hosts share the test database over the network: PostgreSQL only")
    records = 150
    database = network.relay(connection.settings_dict["PORT"] or 5432)
    broker = network.relay(own_redis.port)
    a, b = network.add_host("a"), network.add_host("b")
    with Sink(lambda _r: Answer(200, b"{}", delay=0.03)) as sink:
        api = network.relay(sink.port)
        # A short slice: the run goes back to the broker often, so a restart loses messages.
        env = _host_env(network, own_redis, database, broker, DELIVERY_RUN_SLICE_SECONDS="0.5")
        world = _world(
            org_a, member, f"http://{api}:{sink.port}/hook", write_mode="batch", records=records
        )
        scheduler = [sys.executable, "manage.py", "run_scheduler"]
        worker = [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"]
        children.start_command(network.command(b, scheduler), env, "scheduler-b")
        for host in (a, b):
            children.start_command(network.command(host, worker), env, f"worker-{host.name}")
        run = run_create(pipeline=world.pipeline, trigger="api")
        try:
            wait_for(lambda: len(sink.requests) >= 8, timeout=60, what="the run to start")
            own_redis.stop()  # no persistence: every message in it is gone
            time.sleep(2)
            own_redis.start()
            wait_for(
                lambda: Run.objects.get(pk=run.pk).finished_at is not None,
                timeout=120,
                what="the run to finish after the broker came back",
            )
        except AssertionError:
            raise AssertionError(children.logs()) from None
        _assert_contract(run, sink.requests, records)
