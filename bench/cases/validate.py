"""``bench-validate``: the compiled validator against ``orjson.loads`` of the same body."""

from __future__ import annotations

import orjson

from bench import data
from bench.cases.common import Outcome, alternate, median, timed
from bench.results import Row, median_ratio, target

RECORDS = 10_000
REPETITIONS = 41


def bench_validate(ctx: object) -> Outcome:
    from connectors.schema import compile_schema

    body = data.array_body(0, RECORDS)
    schema = compile_schema(fields=data.FIELDS)
    result = schema.validate_body(body, kind="array")
    valid = not result.errors and len(result.records) == RECORDS
    # The same body with one invalid record at the very end: the slow path that finds it.
    bad = data.records(0, RECORDS)
    bad[-1]["visits"] = "12"
    bad_body = orjson.dumps(bad)
    bad_result = schema.validate_body(bad_body, kind="array")
    found_bad = [(e.index, e.field) for e in bad_result.errors] == [(RECORDS - 1, "visits")]

    def product() -> float:
        return timed(lambda: schema.validate_body(body, kind="array"))[0]

    def baseline() -> float:
        return timed(lambda: orjson.loads(body))[0]

    def product_bad() -> float:
        return timed(lambda: schema.validate_body(bad_body, kind="array"))[0]

    products, baselines = alternate(product=product, baseline=baseline, repetitions=REPETITIONS)
    bad_products, bad_baselines = alternate(product=product_bad, baseline=baseline, repetitions=11)
    return Outcome(
        what=f"parse + validate a {RECORDS:,}-record body ({len(body):,} bytes) in-process",
        rows=[
            Row(
                figure="time, valid body",
                unit="ms",
                product=median(products) * 1000,
                baseline=median(baselines) * 1000,
                ratio=median_ratio(products, baselines),
                target=target("<=", 2.0),
                checks={"all records accepted": valid},
            ),
            Row(
                figure="time, 1 invalid record (last)",
                unit="ms",
                product=median(bad_products) * 1000,
                baseline=median(bad_baselines) * 1000,
                ratio=median_ratio(bad_products, bad_baselines),
                checks={"exactly that error reported": found_bad},
                note="context only (no target): the slow path that names every error",
            ),
        ],
        details={
            "records": RECORDS,
            "body_bytes": len(body),
            "repetitions": REPETITIONS,
            "product_ms": [round(t * 1000, 3) for t in products],
            "baseline_ms": [round(t * 1000, 3) for t in baselines],
        },
    )
