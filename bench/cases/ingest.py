"""``bench-ingest`` and ``bench-ingest-small``: the ingest endpoint through gunicorn.

``bench-ingest``: 200,000 records (``bench/data.py``: 10 mixed-type fields, ~216 bytes) POSTed
as 20 requests of 10,000, one after the other, to ``/ingest/<token>/``; against a plain psycopg
binary ``COPY`` of the same rows (the records' JSON text, prepared before the clock starts) into the
same table, one transaction per 10,000 rows, on one connection. The table is emptied before
every repetition so both always insert into the same (empty, same indexes) table.

``bench-ingest-small``: 16 concurrent keep-alive clients POST one record per request for
3 x 10 s (30 s of product in total), alternating with the same load on a database-free
Django JSON view served by the same gunicorn with the same settings (``bench/urls.py``).
"""

from __future__ import annotations

import http.client
import time
from collections import Counter
from datetime import UTC, datetime

from bench import data, profile, stack
from bench.cases import setup
from bench.cases.common import JSONB_AS_BYTES, Outcome, alternate, median
from bench.loadgen import LoadResult, run_load
from bench.results import Row, median_ratio, target

RECORDS = 200_000
PER_REQUEST = 10_000
REPETITIONS = 3
SMALL_SEGMENTS = 3
SMALL_SECONDS = 10
SMALL_CONCURRENCY = 16


def _truncate_records() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE ingest_record")


def _profiled(ctx, name: str, work) -> dict:
    """With BENCH_PROFILE=1: one more (untimed) product repetition under py-spy."""
    if not profile.enabled():
        return {}
    summary = profile.record(ctx.gunicorn_pids(), name, work)
    print(profile.format_summary(summary), flush=True)
    return {"profile": summary}


def _non_objects() -> int:
    """Stored rows whose data is not a JSON object (would reveal a broken baseline)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ingest_record WHERE jsonb_typeof(data) <> 'object'")
        return cursor.fetchone()[0]


def _post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    return response.status, answer


def bench_ingest(ctx) -> Outcome:
    import orjson
    import psycopg

    ctx.gunicorn()
    org = setup.organization("bench-ingest")
    product_source, token = setup.source(org, "ingest product")
    baseline_source, _ = setup.source(org, "ingest baseline")
    starts = range(0, RECORDS, PER_REQUEST)
    bodies = [data.array_body(start, PER_REQUEST) for start in starts]
    # jsonb's binary input is a version byte (1) followed by the JSON text.
    texts = [[b"\x01" + line for line in data.record_lines(s, PER_REQUEST)] for s in starts]
    body_bytes = sum(len(b) for b in bodies)
    refused: list[str] = []
    not_objects: list[int] = []
    sequence = 0

    def product() -> float:
        _truncate_records()
        started = time.perf_counter()
        for body in bodies:
            status, answer = _post(ctx.gunicorn_port, f"/ingest/{token}/", body)
            if status != 200 or orjson.loads(answer).get("accepted") != PER_REQUEST:
                refused.append(f"{status} {answer[:200]!r}")
        return RECORDS / (time.perf_counter() - started)

    def baseline() -> float:
        nonlocal sequence
        _truncate_records()
        columns = "organization_id, connector_id, sequence, received_at, data"
        with psycopg.connect(setup.database_url()) as conn:
            started = time.perf_counter()
            for batch in texts:
                now = datetime.now(UTC)
                sql = f"COPY ingest_record ({columns}) FROM STDIN (FORMAT BINARY)"
                with conn.transaction(), conn.cursor() as cursor, cursor.copy(sql) as copy:
                    copy.set_types(JSONB_AS_BYTES)
                    for text in batch:
                        sequence += 1
                        copy.write_row((org.id, baseline_source.id, sequence, now, text))
            rate = RECORDS / (time.perf_counter() - started)
        not_objects.append(_non_objects())
        return rate

    products, baselines = alternate(product=product, baseline=baseline, repetitions=REPETITIONS)
    not_objects.append(_non_objects())
    product_source.source.refresh_from_db()
    stored = product_source.source.last_sequence
    profiled = _profiled(ctx, "bench-ingest", product)
    return Outcome(
        what=f"{RECORDS:,} records ({body_bytes / RECORDS:.0f} B each) POSTed in requests of "
        f"{PER_REQUEST:,} to the ingest URL (gunicorn, PostgreSQL), sequentially",
        rows=[
            Row(
                figure="records/s",
                unit="records/s",
                product=median(products),
                baseline=median(baselines),
                ratio=median_ratio(products, baselines),
                target=target(">=", 0.8),
                checks={
                    "every request accepted": not refused,
                    "every record stored": stored == REPETITIONS * RECORDS,
                    "stored as JSON objects (both)": not any(not_objects),
                },
            )
        ],
        details={
            "repetitions": REPETITIONS,
            "product_records_per_s": products,
            "baseline_records_per_s": baselines,
            "body_bytes_total": body_bytes,
            "refused": refused[:5],
            **profiled,
            "gunicorn": stack.gunicorn_shape(),
        },
        notes=[
            "baseline: psycopg 3 binary COPY (write_row) of the same records' JSON into "
            "ingest_record, one transaction per 10,000 rows, JSON text prepared before timing "
            "(binary measured faster than text COPY here: ~39k vs ~33k rows/s)"
        ],
    )


def _small_load(port: int, path: str | list[str], body: bytes) -> LoadResult:
    return run_load(
        host="127.0.0.1",
        port=port,
        path=path,
        body=body,
        headers={"Content-Type": "application/json"},
        concurrency=SMALL_CONCURRENCY,
        seconds=SMALL_SECONDS,
        keep_alive=True,
    )


def bench_ingest_small(ctx) -> Outcome:
    ctx.gunicorn()
    org = setup.organization("bench-small")
    product_source, token = setup.source(org, "ingest small")
    # Context: the same load spread over one connector per client (no shared connector lock).
    spread = [f"/ingest/{setup.source(org, f'small {i}')[1]}/" for i in range(SMALL_CONCURRENCY)]
    body = data.array_body(0, 1)[1:-1]  # one JSON object
    runs: dict[str, list[LoadResult]] = {"product": [], "baseline": [], "spread": []}
    cpu: dict[str, list[tuple[float, float]]] = {"product": [], "baseline": []}

    def measured(name: str, path: str) -> float:
        before = _cpu_seconds(ctx)
        result = _small_load(ctx.gunicorn_port, path, body)
        after = _cpu_seconds(ctx)
        runs[name].append(result)
        cpu[name].append(_cpu_per_request(before, after, result.requests))
        return result.per_second

    products, baselines = alternate(
        product=lambda: measured("product", f"/ingest/{token}/"),
        baseline=lambda: measured("baseline", "/bench/echo/"),
        repetitions=SMALL_SEGMENTS,
    )
    waits = _pg_waits(lambda: runs["spread"].append(_small_load(ctx.gunicorn_port, spread, body)))
    one_connector_waits = _pg_waits(
        lambda: runs["spread"].append(_small_load(ctx.gunicorn_port, f"/ingest/{token}/", body))
    )
    spread_rate, one_rate = runs["spread"][0].per_second, runs["spread"][1].per_second
    accepted_one = runs["spread"].pop().statuses[200]
    path = f"/ingest/{token}/"
    profiled = _profiled(ctx, "bench-ingest-small", lambda: measured("product", path))
    if profiled:
        accepted_one += runs["product"].pop().statuses[200]
        cpu["product"].pop()
    merged = {name: _merge(results) for name, results in runs.items()}
    all_ok = all(set(r.statuses) == {200} and not r.errors for rs in runs.values() for r in rs)
    stored = _stored(product_source.id)
    answered = merged["product"].statuses[200] + accepted_one
    p99 = merged["product"].percentile(0.99) * 1000
    p99_baseline = merged["baseline"].percentile(0.99) * 1000
    cpu_note = "; ".join(
        f"{name} CPU per request: web {_mean(c, 0):.0f} µs + PostgreSQL {_mean(c, 1):.0f} µs"
        for name, c in cpu.items()
    )
    return Outcome(
        what=f"{SMALL_CONCURRENCY} concurrent clients POST 1 record per request, "
        f"{SMALL_SEGMENTS} x {SMALL_SECONDS} s alternating with a database-free Django JSON view",
        rows=[
            Row(
                figure="requests/s",
                unit="req/s",
                product=median(products),
                baseline=median(baselines),
                ratio=median_ratio(products, baselines),
                target=target(">=", 0.6),
                checks={
                    "every request answered 200": all_ok,
                    "every 200 stored once, dense sequences": stored == (answered,) * 4,
                },
                note=cpu_note,
            ),
            Row(
                figure="p99 latency",
                unit="ms",
                product=p99,
                baseline=p99_baseline,
                target=target("<=", 2),
                note=f"p50 {merged['product'].percentile(0.5) * 1000:.1f} ms "
                f"(baseline {merged['baseline'].percentile(0.5) * 1000:.1f} ms)",
            ),
            Row(
                figure=f"requests/s, {SMALL_CONCURRENCY} connectors (1 per client)",
                unit="req/s",
                product=spread_rate,
                baseline=one_rate,
                checks={"every request answered 200": set(merged["spread"].statuses) == {200}},
                note="context only, no target: the same load spread over one connector per "
                "client, against one shared connector measured right after it (the 'baseline' "
                f"column). PostgreSQL wait events sampled meanwhile, one connector: "
                f"{_top_waits(one_connector_waits)}; {SMALL_CONCURRENCY} connectors: "
                f"{_top_waits(waits)}",
            ),
        ],
        details={
            "segments": {name: [r.summary() for r in rs] for name, rs in runs.items()},
            "cpu_us_per_request_web_pg": cpu,
            "stored_rows_distinct_max_last_sequence": stored,
            "answered_200": answered,
            "concurrency": SMALL_CONCURRENCY,
            **profiled,
            "gunicorn": stack.gunicorn_shape(),
        },
    )


def _cpu_seconds(ctx) -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds so far of each gunicorn worker and of each backend of the bench database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        backends = [row[0] for row in cursor.fetchall()]
    return _cpu_of(ctx.gunicorn_pids()), _cpu_of(backends)


def _cpu_of(pids: list[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        try:
            found[pid] = stack.process_cpu_seconds(pid)
        except OSError:  # ended meanwhile
            continue
    return found


def _cpu_per_request(before, after, requests: int) -> tuple[float, float]:
    """Microseconds of CPU per request: (web processes, PostgreSQL backends)."""
    spent = [
        sum(seconds - start.get(pid, 0.0) for pid, seconds in end.items())
        for start, end in zip(before, after, strict=True)
    ]
    return tuple(round(s * 1e6 / max(requests, 1)) for s in spent)


def _mean(pairs: list[tuple[float, float]], index: int) -> float:
    return sum(pair[index] for pair in pairs) / max(len(pairs), 1)


def _stored(connector_id) -> tuple[int, int, int, int]:
    """Rows, distinct sequences, highest sequence and last_sequence of one connector."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT sequence), coalesce(max(sequence), 0), "
            "(SELECT last_sequence FROM connectors_sourcesettings WHERE connector_id = %s) "
            "FROM ingest_record WHERE connector_id = %s",
            [connector_id, connector_id],
        )
        return tuple(cursor.fetchone())


def _pg_waits(work) -> Counter[str]:
    """Sample what the benchmark database's active backends wait on while ``work()`` runs."""
    import threading

    import psycopg

    counts: Counter[str] = Counter()
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(setup.database_url(), autocommit=True) as conn:
            while not done.is_set():
                rows = conn.execute(
                    "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'active' AND pid <> pg_backend_pid()"
                ).fetchall()
                counts.update(row[0] for row in rows)
                time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        work()
    finally:
        done.set()
        sampler.join()
    return counts


def _top_waits(counts: Counter[str]) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{name} {n / total:.0%}" for name, n in counts.most_common(3))


def _merge(results: list[LoadResult]) -> LoadResult:
    merged = LoadResult()
    for result in results:
        merged.requests += result.requests
        merged.seconds += result.seconds
        merged.latencies += result.latencies
        merged.statuses.update(result.statuses)
        merged.errors += result.errors
    return merged
