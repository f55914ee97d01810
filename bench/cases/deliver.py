"""Delivery benchmarks: pipeline runs executed by Dramatiq workers, sending to the sink.

One source connector holds ``STORED`` records (``id`` = sequence = 1…N), written once with a
binary ``COPY`` (setup, not measured). A run's range is chosen by setting the source's
``last_sequence`` before ``run_create`` (a full-sync pipeline covers ``0 < sequence <=
last_sequence``), so every benchmark reads the same stored rows without storing more.

- ``bench-deliver-batch``: a run of 1,000,000 records in batches of 250,000, against a
  server-side cursor over the same rows streamed as chunked JSON POSTs (one per 250,000) by
  ``requests``.
- ``bench-deliver-single``: 20,000 records one request each, against a plain
  ``requests.Session`` loop posting the same bodies (prepared before timing).
- ``bench-memory``: peak RSS growth of the worker process sending one 250,000-record batch,
  and one 25,000-record batch, each in a fresh worker after a small warm-up run, against the
  body size the sink received.
- ``bench-bisect``: 10,000-record batches with k ∈ {1, 10, 100} records the sink refuses
  (``422`` for any batch holding one), ``split_failed_batches`` on: requests made against the
  bound ``1 + 2·k·⌈log2 n⌉``, and exactly the refused records failed.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from bench import data, profile, stack
from bench.cases import setup
from bench.cases.common import JSONB_AS_BYTES, Outcome, alternate, median
from bench.results import Row, median_ratio, target

BATCH_RECORDS = int(os.environ.get("BENCH_DELIVER_RECORDS", "1000000"))
BATCH_SIZE = 250_000
SINGLE_RECORDS = int(os.environ.get("BENCH_SINGLE_RECORDS", "20000"))
BISECT_RECORDS = 10_000
BISECT_KS = (1, 10, 100)
MEMORY_SIZES = (250_000, 25_000)
STORED = max(BATCH_RECORDS, *MEMORY_SIZES, SINGLE_RECORDS, BISECT_RECORDS)
COPY_STEP = 50_000
RUN_TIMEOUT_SECONDS = 900


class Fixture:
    """The organization, the source with ``STORED`` records, and one pipeline per shape."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.sink = ctx.sink()
        ctx.workers()
        self.org = setup.organization("bench-deliver")
        self.source, _ = setup.source(self.org, "deliver source")
        _store_records(self.org.id, self.source.id, STORED)
        from connectors.models import SourceSettings, SourceState

        SourceSettings.objects.filter(pk=self.source.pk).update(
            last_sequence=STORED, record_count=STORED, state=SourceState.ACTIVE
        )
        self.pipelines: dict[str, Any] = {}

    def pipeline(self, name: str, **destination: Any):
        """A full-sync pipeline to a sink destination with these settings (made once)."""
        if name not in self.pipelines:
            from connectors.services import connector_create
            from pipelines.services import pipeline_create

            created = connector_create(
                organization=self.org,
                name=f"sink {name}",
                direction="destination",
                fields=data.FIELDS,
                destination={"url": f"{self.sink.url}/{name}", **destination},
            )
            self.pipelines[name] = pipeline_create(
                organization=self.org,
                name=name,
                source_id=self.source.id,
                destination_id=created.connector.id,
                sync_mode="full",
            )
        return self.pipelines[name]

    def run(self, name: str, records: int, **destination: Any):
        """Run pipeline ``name`` over sequences 1…``records``; the finished run, seconds."""
        from connectors.models import SourceSettings
        from pipelines.models import Run
        from pipelines.services import run_create

        pipeline = self.pipeline(name, **destination)
        SourceSettings.objects.filter(pk=self.source.pk).update(last_sequence=records)
        started = time.perf_counter()
        run = run_create(pipeline=pipeline, trigger="api")
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while True:
            run = Run.objects.get(pk=run.pk)
            if run.finished_at is not None:
                return run, time.perf_counter() - started
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run.pk} did not finish in {RUN_TIMEOUT_SECONDS} s")
            self.ctx.workers().check_alive()
            time.sleep(0.05)

    def worker_pids(self) -> list[int]:
        return self.ctx.workers().descendants() or [self.ctx.workers().pid]


def fixture(ctx) -> Fixture:
    if getattr(ctx, "deliver_fixture", None) is None:
        ctx.deliver_fixture = Fixture(ctx)
    return ctx.deliver_fixture


def _store_records(organization_id, connector_id, count: int) -> None:
    """Records 1…count (id = sequence) with a binary COPY, in steps of ``COPY_STEP``."""
    import psycopg

    columns = "organization_id, connector_id, sequence, received_at, data"
    sql = f"COPY ingest_record ({columns}) FROM STDIN (FORMAT BINARY)"
    with psycopg.connect(setup.database_url()) as conn:
        for start in range(1, count + 1, COPY_STEP):
            lines = data.record_lines(start, min(COPY_STEP, count + 1 - start))
            now = datetime.now(UTC)
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(sql) as copy:
                copy.set_types(JSONB_AS_BYTES)
                for sequence, line in enumerate(lines, start):
                    copy.write_row((organization_id, connector_id, sequence, now, b"\x01" + line))
        conn.execute("ANALYZE ingest_record")


def _scaled(records: int, issue_size: int) -> list[str]:
    if records == issue_size:
        return []
    return [f"SCALED: {records:,} records instead of the issue's {issue_size:,} (env override)"]


def _id_sum(records: int) -> int:
    return records * (records + 1) // 2


def _sink_checks(stats: dict[str, Any], records: int) -> dict[str, bool]:
    return {
        "sink got every record once": stats["records_ok"] == records
        and stats["ok_id_sum"] == _id_sum(records),
    }


class CpuMeter:
    """CPU seconds used by the worker processes (product) or this process (baseline)."""

    def __init__(self) -> None:
        self.product: list[float] = []
        self.baseline: list[float] = []

    def worker(self, fx: Fixture, work: Callable[[], float]) -> float:
        pids = fx.worker_pids()
        before = sum(stack.process_cpu_seconds(pid) for pid in pids)
        figure = work()
        self.product.append(sum(stack.process_cpu_seconds(pid) for pid in pids) - before)
        return figure

    def here(self, work: Callable[[], float]) -> float:
        before = time.process_time()
        figure = work()
        self.baseline.append(time.process_time() - before)
        return figure

    def note(self, records: int) -> str:
        return (
            f"CPU per record: worker {median(self.product) / records * 1e6:.0f} µs, "
            f"baseline client {median(self.baseline) / records * 1e6:.0f} µs"
        )


def _sink_load(fx: Fixture, work: Callable[[], float]) -> tuple[float, float]:
    """``work()``'s figure and the sink's CPU use meanwhile (fraction of one core)."""
    cpu = fx.sink.cpu_seconds()
    started = time.perf_counter()
    figure = work()
    return figure, (fx.sink.cpu_seconds() - cpu) / (time.perf_counter() - started)


# --- batch -------------------------------------------------------------------------------------


def _stream_batches(fx: Fixture, records: int) -> Iterator[tuple[int, int]]:
    for lower in range(0, records, BATCH_SIZE):
        yield lower, min(lower + BATCH_SIZE, records)


def _baseline_batch(fx: Fixture, records: int) -> float:
    """Server-side cursor → chunked JSON POST per 250,000 records, with ``requests``."""
    import psycopg
    import requests

    session = requests.Session()
    started = time.perf_counter()
    with psycopg.connect(setup.database_url()) as conn:
        for lower, upper in _stream_batches(fx, records):

            def body(lower: int = lower, upper: int = upper) -> Iterator[bytes]:
                with conn.cursor(name="bench_stream") as cursor:
                    cursor.itersize = 10_000
                    cursor.execute(
                        "SELECT data::text FROM ingest_record WHERE connector_id = %s "
                        "AND sequence > %s AND sequence <= %s ORDER BY sequence",
                        [fx.source.id, lower, upper],
                    )
                    yield b"["
                    first = True
                    while rows := cursor.fetchmany(10_000):
                        text = ",".join(row[0] for row in rows)
                        yield (text if first else "," + text).encode()
                        first = False
                    yield b"]"

            response = session.post(
                f"{fx.sink.url}/baseline", data=body(), headers={"Content-Type": "application/json"}
            )
            response.raise_for_status()
            conn.commit()
    return records / (time.perf_counter() - started)


def bench_deliver_batch(ctx) -> Outcome:
    fx = fixture(ctx)
    destination = {"write_mode": "batch", "batch_size": BATCH_SIZE}
    runs: list[Any] = []
    checks: dict[str, bool] = {}
    sink_cpu: list[float] = []
    meter = CpuMeter()

    def product() -> float:
        fx.sink.reset()
        figure, cpu = _sink_load(
            fx, lambda: meter.worker(fx, lambda: _product_rate(fx, "batch", runs, destination))
        )
        sink_cpu.append(cpu)
        for name, ok in _sink_checks(fx.sink.stats(), BATCH_RECORDS).items():
            checks[name] = checks.get(name, True) and ok
        return figure

    def baseline() -> float:
        fx.sink.reset()
        figure = meter.here(lambda: _baseline_batch(fx, BATCH_RECORDS))
        ok = fx.sink.stats()["records_ok"] == BATCH_RECORDS
        checks["baseline sent every record"] = checks.get("baseline sent every record", True) and ok
        return figure

    products, baselines = alternate(product=product, baseline=baseline, repetitions=2)
    checks["every run succeeded"] = all(
        r.state == "succeeded" and r.records_delivered == BATCH_RECORDS for r in runs
    )
    details = _profiled(fx, "bench-deliver-batch", lambda: fx.run("batch", BATCH_RECORDS))
    return _records_per_s_outcome(
        records=BATCH_RECORDS,
        full_size=1_000_000,
        what=f"a pipeline run of {BATCH_RECORDS:,} stored records in batches of "
        f"{BATCH_SIZE:,} to the sink (1 Dramatiq worker process)",
        goal=0.8,
        products=products,
        baselines=baselines,
        checks=checks,
        sink_cpu=sink_cpu,
        meter=meter,
        runs=runs,
        details=details,
    )


def _records_per_s_outcome(
    *,
    records: int,
    full_size: int,
    what: str,
    goal: float,
    products: list[float],
    baselines: list[float],
    checks: dict[str, bool],
    sink_cpu: list[float],
    meter: CpuMeter,
    runs: list,
    details: dict[str, Any],
) -> Outcome:
    """The one-row result of a delivery throughput benchmark (product vs baseline records/s)."""
    return Outcome(
        notes=_scaled(records, full_size),
        what=what,
        rows=[
            Row(
                figure="records/s",
                unit="records/s",
                product=median(products),
                baseline=median(baselines),
                ratio=median_ratio(products, baselines),
                target=target(">=", goal),
                checks=checks,
                note=f"sink busy {max(sink_cpu):.0%} of one core at most during product runs; "
                + meter.note(records),
            )
        ],
        details={
            "product_records_per_s": products,
            "baseline_records_per_s": baselines,
            "requests_made": [r.requests_made for r in runs],
            "cpu_seconds": {"worker": meter.product, "baseline": meter.baseline},
            **details,
        },
    )


def _product_rate(fx: Fixture, name: str, runs: list, destination: dict[str, Any]) -> float:
    records = BATCH_RECORDS if name == "batch" else SINGLE_RECORDS
    run, seconds = fx.run(name, records, **destination)
    runs.append(run)
    return run.records_delivered / seconds


def _profiled(fx: Fixture, name: str, work: Callable[[], Any]) -> dict[str, Any]:
    if not profile.enabled():
        return {}
    fx.sink.reset()
    summary = profile.record(fx.worker_pids(), name, work)
    print(profile.format_summary(summary), flush=True)
    return {"profile": summary}


# --- single ------------------------------------------------------------------------------------


def _single_bodies(fx: Fixture, records: int) -> list[bytes]:
    """Each record's JSON as the product would send it (read from the database)."""
    from ingest.models import Record

    rows = (
        Record.objects.filter(connector_id=fx.source.id, sequence__lte=records)
        .order_by("sequence")
        .values_list("data", flat=True)
    )
    import orjson

    return [orjson.dumps(row) for row in rows.iterator(chunk_size=5000)]


def bench_deliver_single(ctx) -> Outcome:
    import requests

    fx = fixture(ctx)
    bodies = _single_bodies(fx, SINGLE_RECORDS)
    destination = {"write_mode": "single"}
    runs: list[Any] = []
    checks: dict[str, bool] = {}
    sink_cpu: list[float] = []
    meter = CpuMeter()

    def product() -> float:
        fx.sink.reset()
        figure, cpu = _sink_load(
            fx, lambda: meter.worker(fx, lambda: _product_rate(fx, "single", runs, destination))
        )
        sink_cpu.append(cpu)
        for name, ok in _sink_checks(fx.sink.stats(), SINGLE_RECORDS).items():
            checks[name] = checks.get(name, True) and ok
        return figure

    def baseline() -> float:
        fx.sink.reset()
        session = requests.Session()
        headers = {"Content-Type": "application/json"}
        url = f"{fx.sink.url}/baseline"

        def loop() -> float:
            started = time.perf_counter()
            for body in bodies:
                session.post(url, data=body, headers=headers).raise_for_status()
            return len(bodies) / (time.perf_counter() - started)

        return meter.here(loop)

    products, baselines = alternate(product=product, baseline=baseline, repetitions=2)
    checks["every run succeeded"] = all(r.state == "succeeded" for r in runs)
    details = _profiled(fx, "bench-deliver-single", lambda: fx.run("single", SINGLE_RECORDS))
    return _records_per_s_outcome(
        records=SINGLE_RECORDS,
        full_size=20_000,
        what=f"{SINGLE_RECORDS:,} records, one request each (write_mode single, max_concurrency=8)",
        goal=3.0,
        products=products,
        baselines=baselines,
        checks=checks,
        sink_cpu=sink_cpu,
        meter=meter,
        runs=runs,
        details=details,
    )


# --- memory ------------------------------------------------------------------------------------


# The Segment-style envelope of the envelope row (SPEC §3.2 body_template): the batch is
# written between its two halves, streamed from the same spooled file.
MEMORY_ENVELOPE = {"events": "{{records}}", "source": "osmos-bench", "context": {"bench": True}}


def _peak_growth(
    fx: Fixture, records: int, *, name: str = "memory", **extra: Any
) -> tuple[int, int, Any]:
    """Fresh single-threaded worker, warm-up run, then the peak RSS growth of one batch."""
    fx.ctx.restart_workers(processes=1, threads=1)
    destination = {"write_mode": "batch", "batch_size": BATCH_SIZE, **extra}
    fx.run(name, 100, **destination)  # imports, connections, compiled schema…
    pids = fx.worker_pids()
    before = {pid: stack.rss_bytes(pid) for pid in pids}
    for pid in pids:
        stack.reset_peak_rss(pid)
    fx.sink.reset()
    run, _ = fx.run(name, records, **destination)
    growth = max(stack.rss_bytes(pid, key="VmHWM") - before[pid] for pid in pids)
    return growth, fx.sink.stats()["largest_body"], run


def bench_memory(ctx) -> Outcome:
    fx = fixture(ctx)
    rows = []
    details: dict[str, Any] = {}
    cases = [(records, "", {}) for records in MEMORY_SIZES]
    cases.append((max(MEMORY_SIZES), " in an envelope", {"body_template": MEMORY_ENVELOPE}))
    for records, label, extra in cases:
        name = "memory-envelope" if extra else "memory"
        growth, body, run = _peak_growth(fx, records, name=name, **extra)
        stats = fx.sink.stats()
        details[f"{records}{label}"] = {"growth_bytes": growth, "body_bytes": body}
        largest = records == max(MEMORY_SIZES)
        rows.append(
            Row(
                figure=f"peak RSS growth, {records:,}-record batch{label}",
                unit="MB",
                product=growth / 1e6,
                baseline=body / 1e6,
                target=target("<=", 1.5) if largest else None,
                checks={
                    "run succeeded": run.state == "succeeded",
                    "the sink got every record": stats["records_ok"] == records,
                },
                note="" if largest else "reported, no target",
            )
        )
    fx.ctx.restart_workers()
    return Outcome(
        what="peak RSS growth (VmHWM after clear_refs) of the worker process sending one batch, "
        "against the size of the body the sink received (the envelope row: the batch inside "
        "a body_template, SPEC §3.2)",
        rows=rows,
        details=details,
    )


# --- bisect ------------------------------------------------------------------------------------


def bench_bisect(ctx) -> Outcome:
    from pipelines.models import RecordFailure

    fx = fixture(ctx)
    destination = {
        "write_mode": "batch",
        "batch_size": BISECT_RECORDS,
        "split_failed_batches": True,
    }
    chooser = random.Random(7)
    rows = []
    details: dict[str, Any] = {}
    depth = math.ceil(math.log2(BISECT_RECORDS))
    for k in BISECT_KS:
        bad = sorted(chooser.sample(range(1, BISECT_RECORDS + 1), k))
        fx.sink.reset(fail_ids=bad)
        run, seconds = fx.run("bisect", BISECT_RECORDS, **destination)
        stats = fx.sink.stats()
        failed = sorted(RecordFailure.objects.filter(run=run).values_list("sequence", flat=True))
        bound = 1 + 2 * k * depth
        details[f"k={k}"] = {
            "requests_made": run.requests_made,
            "sink_requests": stats["requests"],
            "bound": bound,
            "seconds": round(seconds, 2),
            "failed": len(failed),
        }
        rows.append(
            Row(
                figure=f"requests, k={k} bad of {BISECT_RECORDS:,}",
                unit="requests",
                product=stats["requests"],
                baseline=bound,
                target=target("<=", 1.0),
                checks={
                    "exactly the bad records failed": failed == bad,
                    "all others delivered once": stats["records_ok"] == BISECT_RECORDS - k
                    and stats["ok_id_sum"] == _id_sum(BISECT_RECORDS) - sum(bad),
                    "run counted the same requests": run.requests_made == stats["requests"],
                },
            )
        )
    fx.sink.reset()
    return Outcome(
        what=f"{BISECT_RECORDS:,}-record batch, k bad records refused by the sink (422), "
        "split_failed_batches on; baseline = the bound 1 + 2·k·⌈log2 n⌉",
        rows=rows,
        details=details,
    )
