"""Faults across hosts: worker hosts in network namespaces cut off from PostgreSQL or the
broker mid-run, and healed (issue 17; the harness is tests/multihost/netns.py).

Each test asserts the contract at the end: the run finished, every record is accounted for
(delivered + failed = total, nothing failed here), every record reached the customer's API,
and a record sent again carried the same Idempotency-Key. A host's late confirmations after
its lease was taken must be refused: the counters would exceed the total otherwise.
"""

from __future__ import annotations

import sys
import time

import pytest
from django.db import connection

from pipelines.models import Run
from pipelines.services import run_create
from tests.multihost.hosts import HEARTBEAT_TIMEOUT, assert_contract, host_env, world
from tests.reliability.processes import wait_for
from tests.support.sink import Answer, Sink

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.reliability]


@pytest.mark.parametrize("write_mode", ["batch", "single"])
def test_a_host_cut_off_from_postgres_mid_run_loses_the_run_to_another_host(
    org_a, member, network, broker, children, write_mode
):
    records = 200
    database = network.relay(connection.settings_dict["PORT"] or 5432)
    broker_at = network.relay(broker.port)
    a, b = network.add_host("a"), network.add_host("b")
    with Sink(lambda _r: Answer(200, b"{}", delay=0.03)) as sink:
        api = network.relay(sink.port)
        env = host_env(broker, database, broker_at)
        made = world(
            org_a, member, f"http://{api}:{sink.port}/hook", write_mode=write_mode, records=records
        )
        worker = [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"]
        scheduler = [sys.executable, "manage.py", "run_scheduler"]
        # The scheduler (on b) hands the run to the broker; only a's worker is there to take it.
        children.start_command(network.command(b, scheduler), env, "scheduler-b")
        children.start_command(network.command(a, worker), env, "worker-a")
        run = run_create(pipeline=made.pipeline, trigger="api")
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
        assert_contract(run, sink.requests, records)


def test_a_host_cut_off_from_the_broker_mid_run_still_finishes_it(
    org_a, member, network, broker, children
):
    records = 150
    database = network.relay(connection.settings_dict["PORT"] or 5432)
    broker_at = network.relay(broker.port)
    a, b = network.add_host("a"), network.add_host("b")
    with Sink(lambda _r: Answer(200, b"{}", delay=0.03)) as sink:
        api = network.relay(sink.port)
        env = host_env(broker, database, broker_at)
        made = world(
            org_a, member, f"http://{api}:{sink.port}/hook", write_mode="batch", records=records
        )
        scheduler = [sys.executable, "manage.py", "run_scheduler"]
        worker = [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"]
        children.start_command(network.command(b, scheduler), env, "scheduler-b")
        children.start_command(network.command(a, worker), env, "worker-a")
        run = run_create(pipeline=made.pipeline, trigger="api")
        try:
            wait_for(lambda: len(sink.requests) >= 5, timeout=60, what="host a sending")
            # a keeps its database and the customer's API: it goes on with the run it holds
            # (heartbeats in PostgreSQL), although it can neither ack nor take messages.
            network.cut(a, broker_at)
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
        assert_contract(run, sink.requests, records)


def test_the_broker_restarted_mid_run_loses_no_record(org_a, member, network, broker, children):
    records = 150
    database = network.relay(connection.settings_dict["PORT"] or 5432)
    broker_at = network.relay(broker.port)
    a, b = network.add_host("a"), network.add_host("b")
    with Sink(lambda _r: Answer(200, b"{}", delay=0.03)) as sink:
        api = network.relay(sink.port)
        # A short slice: the run goes back to the broker often, so a restart loses messages.
        env = host_env(broker, database, broker_at, DELIVERY_RUN_SLICE_SECONDS="0.5")
        made = world(
            org_a, member, f"http://{api}:{sink.port}/hook", write_mode="batch", records=records
        )
        scheduler = [sys.executable, "manage.py", "run_scheduler"]
        worker = [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"]
        children.start_command(network.command(b, scheduler), env, "scheduler-b")
        for host in (a, b):
            children.start_command(network.command(host, worker), env, f"worker-{host.name}")
        run = run_create(pipeline=made.pipeline, trigger="api")
        try:
            wait_for(lambda: len(sink.requests) >= 8, timeout=60, what="the run to start")
            broker.stop()  # no persistence: every message in it is gone
            time.sleep(2)
            broker.start()
            wait_for(
                lambda: Run.objects.get(pk=run.pk).finished_at is not None,
                timeout=120,
                what="the run to finish after the broker came back",
            )
        except AssertionError:
            raise AssertionError(children.logs()) from None
        assert_contract(run, sink.requests, records)
