"""A worker host whose clock is 5 minutes off (ahead, or behind), the others' true.

Leases, heartbeats and the scheduler's sweeps use the database's clock (pipelines.clock),
never a host's: the skewed host must neither steal a live lease (ahead, its own clock says
every heartbeat is 5 minutes old) nor keep a dead one (ahead, its heartbeats would be
stamped 5 minutes into the future), and its live lease must not be taken from it (behind,
its heartbeats would look 5 minutes old to the others).

Host a runs a worker and a scheduler with the skewed clock (time-machine in every Python
process of the host: tests/multihost/skewed_clock; the monotonic clock true); host b a
worker and a scheduler with the true clock. Three phases of one run:

1. a holds the run; b's worker gets duplicate messages for it and b's scheduler sweeps:
   nobody takes it (its attempts and resumes stay 1 and 0);
2. a's worker and scheduler are killed: b takes the run over within the heartbeat timeout
   (plus the sweep's interval and some slack), not 5 minutes later;
3. a comes back (worker and scheduler, still skewed) while b holds the run, and a's worker
   gets duplicate messages: nobody takes it from b.

At the end: the run succeeded, every record delivered (none failed), every record reached
the customer's API with one Idempotency-Key, and no confirmed chunk was sent again.
"""

from __future__ import annotations

import sys
import time

import pytest
from django.db import connection

from pipelines.clock import database_now
from pipelines.models import RequestLog, Run
from pipelines.services import run_create
from tests.multihost.brokers import send_run_message
from tests.multihost.hosts import (
    HEARTBEAT_TIMEOUT,
    ConfirmedWatch,
    assert_contract,
    host_env,
    skewed,
    world,
)
from tests.reliability.processes import wait_for
from tests.support.sink import Answer, Sink

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.reliability]

SKEW_SECONDS = 300
WORKER = [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"]
SCHEDULER = [sys.executable, "manage.py", "run_scheduler"]


def _run(run_id) -> Run:
    return Run.objects.get(pk=run_id)


def _hold(run_id, seconds: float, attempts: int, what: str) -> None:
    """For ``seconds``: the run keeps its holder (no new lease, no resume)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = _run(run_id)
        assert run.finished_at is None, "the run ended too early to prove anything"
        assert (run.attempts, run.resumes) == (attempts, attempts - 1), what
        time.sleep(0.2)


@pytest.mark.parametrize("offset", [SKEW_SECONDS, -SKEW_SECONDS], ids=["ahead", "behind"])
def test_a_host_whose_clock_is_5_minutes_off_neither_steals_nor_keeps_a_lease(
    org_a, member, network, broker, children, offset
):
    records = 400
    database = network.relay(connection.settings_dict["PORT"] or 5432)
    broker_at = network.relay(broker.port)
    a, b = network.add_host("a"), network.add_host("b")
    with Sink(lambda _r: Answer(200, b"{}", delay=0.25)) as sink:
        api = network.relay(sink.port)
        env = host_env(broker, database, broker_at)
        env_a = skewed(env, offset)
        made = world(
            org_a,
            member,
            f"http://{api}:{sink.port}/hook",
            write_mode="batch",
            records=records,
            max_concurrency=1,  # one request at a time: the run lasts through the phases
        )
        scheduler_a = children.start_command(network.command(a, SCHEDULER), env_a, "scheduler-a")
        children.start_command(network.command(b, SCHEDULER), env, "scheduler-b")
        worker_a = children.start_command(network.command(a, WORKER), env_a, "worker-a")
        run = run_create(pipeline=made.pipeline, trigger="api")
        try:
            with ConfirmedWatch(run.pk, sink) as watch:
                wait_for(lambda: len(sink.requests) >= 5, timeout=60, what="host a sending")
                # The skew is real: a's request log rows carry a's clock.
                logged = RequestLog.objects.filter(run=run).latest("created_at").created_at
                off = (logged - database_now()).total_seconds()
                assert abs(off - offset) < 30, f"host a's clock is {off:.0f} s off"

                # 1. a holds the run; b (true clock) sweeps and gets duplicates.
                children.start_command(network.command(b, WORKER), env, "worker-b")
                for _ in range(4):
                    send_run_message(broker, run.pk)
                _hold(run.pk, HEARTBEAT_TIMEOUT + 2, 1, "host b took host a's live lease")

                # 2. a dies: b takes the run over in about the heartbeat timeout.
                for process in (worker_a, scheduler_a):
                    children.kill(process)
                killed_at = time.monotonic()
                wait_for(
                    lambda: _run(run.pk).attempts >= 2,
                    timeout=HEARTBEAT_TIMEOUT + 15,
                    what="host b to take over the dead host a's run",
                )
                taken_after = time.monotonic() - killed_at

                # 3. a comes back, skewed, while b holds the run, and gets duplicates.
                children.start_command(network.command(a, SCHEDULER), env_a, "scheduler-a")
                children.start_command(network.command(a, WORKER), env_a, "worker-a")
                for _ in range(4):
                    send_run_message(broker, run.pk)
                _hold(run.pk, HEARTBEAT_TIMEOUT + 2, 2, "host a took host b's live lease")

                wait_for(
                    lambda: _run(run.pk).finished_at is not None,
                    timeout=180,
                    what="the run to finish",
                )
        except AssertionError as error:
            raise AssertionError(f"{error}\n{children.logs()}") from None
        assert taken_after < HEARTBEAT_TIMEOUT + 15
        assert_contract(run, sink.requests, records)
        watch.assert_never_resent()
