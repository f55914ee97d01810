"""A destination's rate limit and max_concurrency held across hosts, counted at the sink.

Three worker hosts each execute a run of their own (three pipelines into one destination;
one thread and a prefetch of one message per worker, so each host takes one run) in single
mode, all at once. The destination allows RATE requests a second and CONCURRENCY in flight;
the sink answers after a random 0.05 to 0.6 s, so that sometimes the rate binds and sometimes
the concurrency. The sink counts what it sees: the arrival time of every request and how
many were in flight (arrived, not yet answered) when each arrived; the relay in front of it
says which host sent each one.

The gate (osmos.outbound.gate) has no burst allowance: any 1-second window holds at most
RATE requests, whichever host sends them, and at most CONCURRENCY are in flight at once.
"""

from __future__ import annotations

import random
import sys
import threading
import time

import pytest
from django.db import connection

from pipelines.models import Run, RunState
from pipelines.services import run_create
from tests.multihost.hosts import host_env
from tests.reliability.processes import wait_for
from tests.support import schemas
from tests.support.factories import make_destination, make_pipeline, make_source
from tests.support.sink import Answer, Sink

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.reliability]

RATE = 10
CONCURRENCY = 12
RECORDS = 50  # per run; three runs (a saved source holds at least 50)
WORKER = [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "1"]
SCHEDULER = [sys.executable, "manage.py", "run_scheduler"]


class CountingSink:
    """Answers after a random delay; notes each request's arrival and the number in flight."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.arrivals: list[tuple[float, int, int]] = []  # (time, in flight, client port)

    def __call__(self, request) -> Answer:
        with self._lock:
            self.in_flight += 1
            self.arrivals.append((time.monotonic(), self.in_flight, request.client_port))
            delay = self._rng.uniform(0.5, 2.0)
        try:
            time.sleep(delay)
        finally:
            with self._lock:
                self.in_flight -= 1
        return Answer(200, b"{}")


def busiest_second(times: list[float]) -> int:
    """The most requests in any 1-second window [t, t + 1) that starts at a request."""
    times = sorted(times)
    most, j = 0, 0
    for i, start in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < start + 1.0:
            j += 1
        most = max(most, j - i)
    return most


def test_busiest_second_counts_a_sliding_window():
    assert busiest_second([]) == 0
    assert busiest_second([0.0, 0.5, 0.99, 1.0, 1.5]) == 3
    assert busiest_second([0.0, 1.0, 2.0]) == 1
    assert busiest_second([0.9, 0.1, 0.5, 1.05]) == 4


def test_rate_limit_and_max_concurrency_hold_across_three_hosts(org_a, network, broker, children):
    database = network.relay(connection.settings_dict["PORT"] or 5432)
    broker_at = network.relay(broker.port)
    hosts = [network.add_host(name) for name in ("a", "b", "c")]
    counting = CountingSink(seed=17)
    with Sink(counting) as sink:
        api = network.relay(sink.port)
        destination = make_destination(
            org_a,
            schema=schemas.IDS,
            url=f"http://{api}:{sink.port}/hook",
            write_mode="single",
            rate_limit_per_second=RATE,
            max_concurrency=CONCURRENCY,
            timeout_seconds=5,
        )
        pipelines = []
        for n in range(3):
            source = make_source(
                org_a,
                name=f"Source {n}",
                schema=schemas.IDS,
                records=schemas.id_records(RECORDS),
                save=True,
            )
            pipelines.append(make_pipeline(org_a, source, destination))
        env = host_env(broker, database, broker_at, dramatiq_queue_prefetch="1")
        for host in hosts:
            children.start_command(network.command(host, WORKER), env, f"worker-{host.name}")
        wait_for(
            lambda: children.logs().count("ready for action") >= len(hosts),
            timeout=60,
            what="the three workers to start",
        )
        # The scheduler hands the runs to this test's broker (the test process has another).
        children.start_command(network.command(hosts[0], SCHEDULER), env, "scheduler")
        runs = [run_create(pipeline=p, trigger="api") for p in pipelines]
        try:
            wait_for(
                lambda: all(
                    r.finished_at is not None
                    for r in Run.objects.filter(pk__in=[r.pk for r in runs])
                ),
                timeout=120,
                what="the three runs to finish",
            )
        except AssertionError as error:
            raise AssertionError(f"{error}\n{children.logs()}") from None
        requests = sink.requests

    for run in runs:
        run.refresh_from_db()
        assert run.state == RunState.SUCCEEDED, run.state
        assert (run.records_delivered, run.records_failed) == (RECORDS, 0)
    # Single mode: one key per record (run, chunk, sequence); a record sent again after its
    # run waited for the gate (unconfirmed, so allowed) carries its key again.
    keys = [r.header("Idempotency-Key") for r in requests]
    assert len(set(keys)) == 3 * RECORDS
    repeats = len(keys) - len(set(keys))
    # Every host took part, at the same time: else this would prove nothing across hosts.
    peers = network.relay_of(api).peers
    by_host: dict[str, list[float]] = {}
    for at, _, port in counting.arrivals:
        by_host.setdefault(peers[port], []).append(at)
    assert sorted(by_host) == sorted(h.address for h in hosts), by_host.keys()
    # (A run that cannot get a permit soon waits and frees its worker, so the three do not
    # always overlap; two hosts at once, for seconds, is what the limits are held against.)
    spans = sorted((min(t), max(t)) for t in by_host.values())
    overlap = max(
        min(x[1], y[1]) - max(x[0], y[0]) for i, x in enumerate(spans) for y in spans[i + 1 :]
    )
    assert overlap > 2.0, f"no two hosts sent at the same time: {spans}"

    busiest = busiest_second([at for at, _, _ in counting.arrivals])
    most_in_flight = max(n for _, n, _ in counting.arrivals)
    print(
        f"busiest second: {busiest} (limit {RATE}); most in flight: {most_in_flight} (limit "
        f"{CONCURRENCY}); requests {len(keys)}, repeats {repeats}; host spans {spans}"
    )
    assert busiest <= RATE
    assert most_in_flight <= CONCURRENCY
    # The limits were approached, so holding them means something.
    assert busiest >= RATE - 2
    assert most_in_flight >= CONCURRENCY // 2
