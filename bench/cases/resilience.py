"""``bench-outage-recovery`` and ``bench-fairness``: delivery against a destination that fails.

- ``bench-outage-recovery``: a batch run (5,000 records, 10 chunks) to a destination that
  answers 503 for OUTAGE_SECONDS, then recovers. Figure: seconds from the recovery to the
  run's end, against "2 s + one schedule step" (the issue's target), with a compressed retry
  schedule (RECOVERY_SCHEDULE) so that the case takes seconds, not hours.
- ``bench-fairness``: another organization's 100-record run, alone and then beside 4 runs
  stuck on a destination that sends its status line and then one byte a second (each of them
  cut by its 1 s whole-request deadline and then waiting; the schedule and
  DESTINATION_FAILING_AFTER_SECONDS compressed to 2 s), with 1 worker process of 4 threads.
  It is measured once the stuck runs have been going for a few seconds. Figure: its time
  beside them / its time alone (target <= 1.5x).

The misbehaving destinations are small HTTP servers in this process, on loopback.
"""

from __future__ import annotations

import http.server
import statistics
import threading
import time
from typing import Any

from bench.cases import setup
from bench.cases.common import Outcome
from bench.results import Row, target

OUTAGE_SECONDS = 8.0
RECOVERY_SCHEDULE = "1,2,2,2,2,2,2,2,2,2"
RECOVERY_STEP = 2.0
RECOVERY_RECORDS = 5_000
FAIRNESS_RECORDS = 100
STUCK_RUNS = 4
REPETITIONS = 3
RUN_TIMEOUT_SECONDS = 120


class _Destination:
    """A loopback API: 503 while ``down``, a one-byte-a-second answer while ``drip``, else
    200; counts requests."""

    def __init__(self) -> None:
        self.down = False
        self.drip = False
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.requests += 1
                status = 503 if owner.down else 200
                body = b"x" * 60 if owner.drip else b"{}"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if owner.drip:
                        for byte in body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(1)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pipeline(org, source, url: str, name: str, **destination: Any):
    from bench import data
    from connectors.services import connector_create
    from pipelines.services import pipeline_create

    created = connector_create(
        organization=org,
        name=f"dest {name}",
        direction="destination",
        fields=data.FIELDS,
        destination={"url": url, **destination},
    )
    return pipeline_create(
        organization=org,
        name=name,
        source_id=source.id,
        destination_id=created.connector.id,
        sync_mode="full",
    )


def _source(org, records: int):
    from bench.cases.deliver import _store_records
    from connectors.models import SourceSettings, SourceState

    source, _ = setup.source(org, "resilience source")
    _store_records(org.id, source.id, records)
    SourceSettings.objects.filter(pk=source.pk).update(
        last_sequence=records, record_count=records, state=SourceState.ACTIVE
    )
    return source


def _wait(run, ctx) -> Any:
    from pipelines.models import Run

    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        run = Run.objects.get(pk=run.pk)
        if run.finished_at is not None:
            return run
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run.pk} did not finish in {RUN_TIMEOUT_SECONDS} s")
        ctx.workers().check_alive()
        time.sleep(0.02)


def _workers_with(ctx, env: dict[str, str]) -> None:
    import os

    os.environ.update(env)
    try:
        ctx.restart_workers(processes=1, threads=4)
    finally:
        for key in env:
            os.environ.pop(key, None)


def bench_outage_recovery(ctx) -> Outcome:
    ctx.django()
    from pipelines.services import run_create

    _workers_with(
        ctx,
        {
            "DELIVERY_RETRY_SCHEDULE": RECOVERY_SCHEDULE,
            "DELIVERY_QUICK_RETRY_SECONDS": "0.5",
            "SCHEDULER_INTERVAL_SECONDS": "1",
        },
    )
    destination = _Destination()
    try:
        org = setup.organization("bench-outage")
        source = _source(org, RECOVERY_RECORDS)
        pipeline = _pipeline(org, source, destination.url, "outage", batch_size=500)
        destination.down = True
        run = run_create(pipeline=pipeline, trigger="api")
        time.sleep(OUTAGE_SECONDS)
        destination.down = False
        recovered = time.monotonic()
        run = _wait(run, ctx)
        seconds = time.monotonic() - recovered
    finally:
        destination.close()
        ctx.restart_workers()
    budget = 2.0 + RECOVERY_STEP
    return Outcome(
        what=f"{RECOVERY_RECORDS:,} records in 10 batches to a destination answering 503 for "
        f"{OUTAGE_SECONDS:.0f} s, retry schedule {RECOVERY_SCHEDULE} s",
        rows=[
            Row(
                figure="seconds from the destination's recovery to the run's end",
                unit="s",
                product=seconds,
                baseline=budget,
                target=target("<=", 1.0),
                checks={
                    "the run succeeded": run.state == "succeeded",
                    "no record failed": run.records_failed == 0,
                    "the run waited (no worker held)": run.resumes == 0,
                },
                note=f"target: 2 s + one schedule step ({RECOVERY_STEP:.0f} s); "
                f"{destination.requests} requests",
            )
        ],
        details={"requests": destination.requests, "records": run.records_delivered},
    )


def bench_fairness(ctx) -> Outcome:
    ctx.django()
    from pipelines.services import run_create

    # Time compressed like the schedule: the destination turns failing after 2 s (not 300)
    # of failures, then one probe at a time tries it.
    _workers_with(
        ctx,
        {
            "DELIVERY_RETRY_SCHEDULE": "2,2,2,2,2,2,2,2,2,2",
            "DESTINATION_FAILING_AFTER_SECONDS": "2",
        },
    )
    fast, drip = _Destination(), _Destination()
    drip.drip = True
    try:
        other = setup.organization("bench-fair-b")
        pipeline = _pipeline(
            other, _source(other, FAIRNESS_RECORDS), fast.url, "fast", batch_size=100
        )

        def timed_run() -> float:
            started = time.monotonic()
            run = _wait(run_create(pipeline=pipeline, trigger="api"), ctx)
            if run.state != "succeeded":
                raise RuntimeError(f"the measured run ended {run.state}")
            return time.monotonic() - started

        alone = [timed_run() for _ in range(REPETITIONS)]
        stuck_org = setup.organization("bench-fair-a")
        source = _source(stuck_org, 50)
        stuck = [
            run_create(
                pipeline=_pipeline(stuck_org, source, drip.url, f"drip {n}", timeout_seconds=1),
                trigger="api",
            )
            for n in range(STUCK_RUNS)
        ]
        deadline = time.monotonic() + 30
        while drip.requests < STUCK_RUNS and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(4)  # past DESTINATION_FAILING_AFTER_SECONDS: the steady state
        beside = [timed_run() for _ in range(REPETITIONS)]
        from pipelines.models import Run
        from pipelines.services import run_cancel

        for run in stuck:
            run_cancel(run=Run.objects.get(pk=run.pk))
    finally:
        fast.close()
        drip.close()
        ctx.restart_workers()
    ratio = statistics.median(beside) / statistics.median(alone)
    return Outcome(
        what=f"another organization's {FAIRNESS_RECORDS}-record run beside {STUCK_RUNS} runs "
        "stuck on a destination dripping one byte a second (1 worker process x 4 threads)",
        rows=[
            Row(
                figure="run time beside stuck runs / alone",
                unit="s",
                product=statistics.median(beside),
                baseline=statistics.median(alone),
                ratio=ratio,
                target=target("<=", 1.5),
                checks={"the dripping destination was tried": drip.requests >= STUCK_RUNS},
                note=f"alone {', '.join(f'{s:.2f}' for s in alone)} s; beside "
                f"{', '.join(f'{s:.2f}' for s in beside)} s",
            )
        ],
        details={"alone": alone, "beside": beside, "drip_requests": drip.requests},
    )
