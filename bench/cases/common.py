"""What a benchmark returns to the runner, and timing helpers shared by the cases."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.results import Row

# Binary COPY types of (organization_id, connector_id, sequence, received_at, data) for
# ingest_record. ``data`` is dumped as raw bytes: b"\x01" (jsonb's binary format version) +
# the JSON text, so PostgreSQL parses the JSON itself. (Declaring it ``jsonb`` would make
# psycopg JSON-encode a str: a JSON *string* would be stored instead of the object.)
JSONB_AS_BYTES = ["uuid", "uuid", "int8", "timestamptz", "bytea"]


@dataclass
class Outcome:
    what: str
    rows: list[Row]
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds taken by ``function()`` (after a full collection), and what it returned."""
    gc.collect()
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def alternate(
    *, product: Callable[[], float], baseline: Callable[[], float], repetitions: int
) -> tuple[list[float], list[float]]:
    """Run baseline, product, baseline, product… and return both lists of figures."""
    products, baselines = [], []
    for _ in range(repetitions):
        baselines.append(baseline())
        products.append(product())
    return products, baselines


def median(values: list[float]) -> float:
    return statistics.median(values)
