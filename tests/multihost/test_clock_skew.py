"""Worker hosts whose clocks are 5 minutes off, one ahead and one behind, beside a true one.

Leases, heartbeats and the scheduler's sweeps use the database's clock (pipelines.clock),
never a host's. Otherwise a host whose clock is ahead would keep a dead lease (its
heartbeats stamped 5 minutes into the future) and steal live ones (by its clock every
other heartbeat is 5 minutes old), and a host whose clock is behind would have its live
lease taken (its heartbeats look 5 minutes old to the others).

Three hosts, each with a scheduler: a runs 5 minutes ahead, c 5 minutes behind, b true
(time-machine in every Python process of a host: tests/multihost/skewed_clock; the
monotonic clocks true). One run, in phases:

0. a's worker takes the run (a's request log rows carry a's clock: the skew is real);
1. c's worker starts and gets duplicate messages for the run, all three schedulers sweep:
   nobody takes the run from a (its attempts and resumes stay 1 and 0);
2. a's worker and scheduler are killed: c takes the run over within the heartbeat timeout
   plus the sweep's interval and some slack, not 5 minutes later (c's rows carry c's clock);
3. a comes back (worker and scheduler, still ahead) and gets duplicate messages, while c,
   behind, holds the run and the true b sweeps: nobody takes the run from c.

At the end: the run succeeded, every record delivered (none failed), every record reached
the customer's API with one Idempotency-Key, and no confirmed chunk was sent again.
With the host's clock in pipelines.leases and pipelines.scheduler instead, phase 2 times
out (a's dead lease is kept) and phase 3 fails (c's live lease is taken).
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


def _skew_seen(run_id, *, besides=()) -> float | None:
    """How far ahead of the database's clock the request log rows of the run (other than
    ``besides``) were stamped: the clock of the host that wrote them. None: no row yet."""
    rows = RequestLog.objects.filter(run_id=run_id).exclude(pk__in=list(besides))
    latest = rows.order_by("-created_at").values_list("created_at", flat=True).first()
    return None if latest is None else (latest - database_now()).total_seconds()


def test_hosts_whose_clocks_are_5_minutes_off_neither_steal_nor_keep_a_lease(
    org_a, member, network, broker, children
):
    records = 400
    database = network.relay(connection.settings_dict["PORT"] or 5432)
    broker_at = network.relay(broker.port)
    a, b, c = (network.add_host(name) for name in ("a", "b", "c"))
    delay = [0.25]  # slow while the phases last, then fast: the run need not drag on
    with Sink(lambda _r: Answer(200, b"{}", delay=delay[0])) as sink:
        api = network.relay(sink.port)
        env_b = host_env(broker, database, broker_at)
        env_a, env_c = skewed(env_b, SKEW_SECONDS), skewed(env_b, -SKEW_SECONDS)
        made = world(
            org_a,
            member,
            f"http://{api}:{sink.port}/hook",
            write_mode="batch",
            records=records,
            max_concurrency=1,  # one request at a time: the run lasts through the phases
        )
        scheduler_a = children.start_command(network.command(a, SCHEDULER), env_a, "scheduler-a")
        children.start_command(network.command(b, SCHEDULER), env_b, "scheduler-b")
        children.start_command(network.command(c, SCHEDULER), env_c, "scheduler-c")
        worker_a = children.start_command(network.command(a, WORKER), env_a, "worker-a")
        run = run_create(pipeline=made.pipeline, trigger="api")
        try:
            with ConfirmedWatch(run.pk, sink) as watch:
                # 0. a (ahead) holds the run.
                wait_for(lambda: _skew_seen(run.pk) is not None, timeout=60, what="a sending")
                skew_a = _skew_seen(run.pk)

                # 1. c (behind) gets duplicates; every scheduler sweeps.
                children.start_command(network.command(c, WORKER), env_c, "worker-c")
                for _ in range(4):
                    send_run_message(broker, run.pk)
                _hold(run.pk, HEARTBEAT_TIMEOUT + 2, 1, "a live lease of host a was taken")

                # 2. a dies: c takes the run over in about the heartbeat timeout.
                for process in (worker_a, scheduler_a):
                    children.kill(process)
                killed_at = time.monotonic()
                rows_of_a = set(RequestLog.objects.filter(run=run).values_list("pk", flat=True))
                wait_for(
                    lambda: _run(run.pk).attempts >= 2,
                    timeout=HEARTBEAT_TIMEOUT + 15,
                    what="host c to take over the dead host a's run",
                )
                taken_after = time.monotonic() - killed_at
                wait_for(
                    lambda: _skew_seen(run.pk, besides=rows_of_a) is not None,
                    timeout=30,
                    what="host c sending",
                )
                skew_c = _skew_seen(run.pk, besides=rows_of_a)

                # 3. a comes back, ahead, and gets duplicates, while c (behind) holds the run.
                children.start_command(network.command(a, SCHEDULER), env_a, "scheduler-a")
                children.start_command(network.command(a, WORKER), env_a, "worker-a")
                for _ in range(4):
                    send_run_message(broker, run.pk)
                _hold(run.pk, HEARTBEAT_TIMEOUT + 2, 2, "a live lease of host c was taken")
                delay[0] = 0.01

                wait_for(
                    lambda: _run(run.pk).finished_at is not None,
                    timeout=180,
                    what="the run to finish",
                )
        except AssertionError as error:
            raise AssertionError(f"{error}\n{children.logs()}") from None
        # The skews were real: each host's request log rows carry its own clock.
        assert abs(skew_a - SKEW_SECONDS) < 30, f"host a's clock was {skew_a:.0f} s off"
        assert abs(skew_c + SKEW_SECONDS) < 30, f"host c's clock was {skew_c:.0f} s off"
        assert taken_after < HEARTBEAT_TIMEOUT + 15
        assert_contract(run, sink.requests, records)
        watch.assert_never_resent()
