"""``bench-sink``: the sink's own capacity, so that it is never mistaken for the bottleneck.

Two figures, measured against the sink process (``bench/sink.py``) on this machine:
- one-record requests/s from 32 keep-alive clients (the ``bench-deliver-single`` shape);
- MB/s of large JSON array bodies, Content-Length and chunked (the ``bench-deliver-batch``
  shape; includes decoding every record's id).
The load generator shares the 2 cores, so these are lower bounds of the sink's capacity.
The delivery benchmarks also report the sink's CPU use while they ran.
"""

from __future__ import annotations

import http.client
import time

from bench import data
from bench.cases.common import Outcome, median
from bench.loadgen import run_load
from bench.results import Row

SMALL_SECONDS = 5
BIG_RECORDS = 250_000


def _post_big(port: int, body: bytes, *, chunked: bool) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    if chunked:
        step = 1 << 20
        chunks = (body[i : i + step] for i in range(0, len(body), step))
        connection.request("POST", "/big", body=chunks, encode_chunked=True)
    else:
        connection.request("POST", "/big", body=body)
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"sink answered {response.status} to a valid big body")
    return elapsed


def bench_sink(ctx) -> Outcome:
    sink = ctx.sink()
    sink.reset()
    one = data.array_body(0, 1)[1:-1]  # one record as a JSON object
    cpu_before = sink.cpu_seconds()
    small = run_load(
        host="127.0.0.1",
        port=sink.port,
        path="/one",
        body=one,
        headers={"Content-Type": "application/json"},
        concurrency=32,
        seconds=SMALL_SECONDS,
        keep_alive=True,
    )
    cpu_small = sink.cpu_seconds() - cpu_before
    counted = sink.stats()
    body = data.array_body(0, BIG_RECORDS)
    sink.reset()
    cpu_before = sink.cpu_seconds()
    plain = [_post_big(sink.port, body, chunked=False) for _ in range(3)]
    chunked = [_post_big(sink.port, body, chunked=True) for _ in range(3)]
    cpu_big = sink.cpu_seconds() - cpu_before
    big_stats = sink.stats()
    mb = len(body) / 1e6
    return Outcome(
        what="the sink's own capacity (lower bounds: the load generator shares the 2 cores)",
        rows=[
            Row(
                figure="1-record requests/s (32 keep-alive clients)",
                unit="req/s",
                product=small.per_second,
                checks={
                    "every request counted": counted["requests"] == small.requests
                    and counted["records_ok"] == small.requests
                },
                note=f"sink CPU {cpu_small / max(small.requests, 1) * 1e6:.0f} µs per request "
                f"(≈ {small.requests / max(cpu_small, 1e-9):,.0f} req/s per core)",
            ),
            Row(
                figure=f"{BIG_RECORDS:,}-record body, Content-Length",
                unit="MB/s",
                product=mb / median(plain),
                checks={"all records counted": big_stats["records_ok"] == 6 * BIG_RECORDS},
            ),
            Row(
                figure=f"{BIG_RECORDS:,}-record body, chunked",
                unit="MB/s",
                product=mb / median(chunked),
                note=f"sink CPU {cpu_big / 6:.2f} s per {mb:.0f} MB body",
            ),
        ],
        details={
            "small": small.summary(),
            "big_body_bytes": len(body),
            "plain_s": plain,
            "chunked_s": chunked,
            "sink_stats_big": big_stats,
        },
    )
