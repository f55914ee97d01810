"""Sampling profiles of the stack's processes with py-spy, summarised as top entries.

``BENCH_PROFILE=1 make bench-…`` (or ``BENCH_PROFILE=gil``: only the thread holding the GIL,
i.e. where the CPU goes, not where threads wait) records a profile of the processes that do
the product's work (gunicorn workers, the Dramatiq worker) during one extra, untimed product
repetition,
and writes ``var/bench/profile-<name>.txt`` (raw folded stacks) plus the summary in the
result's ``details.profile``. Profiling is off by default: py-spy's sampling costs CPU on a
2-core machine and would disturb the timed figures.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.stack import LOG_DIR, VENV_BIN

_PRODUCT_PARTS = ("(connectors/", "(ingest/", "(pipelines/", "(osmos/")


def enabled() -> bool:
    return os.environ.get("BENCH_PROFILE", "") in ("1", "true", "yes", "gil")


def _gil_only() -> list[str]:
    # BENCH_PROFILE=gil samples only the thread holding the GIL: where CPU goes, not waits.
    return ["--gil"] if os.environ.get("BENCH_PROFILE") == "gil" else []


def record(pids: Sequence[int], name: str, work: Callable[[], Any]) -> dict[str, Any]:
    """Run ``work()`` while py-spy samples ``pids``; the summary of where time went."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    spies = []
    for pid in pids:
        out = LOG_DIR / f"profile-{name}-{pid}.txt"
        spies.append(
            (
                out,
                subprocess.Popen(
                    [
                        str(VENV_BIN / "py-spy"),
                        "record",
                        "--pid",
                        str(pid),
                        "--format",
                        "raw",
                        "--output",
                        str(out),
                        "--rate",
                        "100",
                        "--nonblocking",
                        *_gil_only(),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ),
            )
        )
    try:
        work()
    finally:
        for _, spy in spies:
            spy.send_signal(signal.SIGINT)
        for _, spy in spies:
            spy.wait(30)
    lines: list[str] = []
    for out, _ in spies:
        if out.exists():
            lines += out.read_text().splitlines()
    merged = LOG_DIR / f"profile-{name}.txt"
    merged.write_text("\n".join(lines) + "\n")
    return {"file": str(merged.relative_to(LOG_DIR.parent.parent)), **summarize(lines)}


def summarize(lines: Sequence[str], *, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares of the busiest frames in py-spy's raw (folded) output.

    ``product_inclusive`` keeps only frames of our own code (connectors/, ingest/, …).
    """
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in lines:
        line = line.strip()
        if not line or " " not in line:
            continue
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        frames = stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples

    def share(counter: Counter[str], keep: Callable[[str], bool]) -> list[list[Any]]:
        return [
            [round(100 * n / total, 1), frame] for frame, n in counter.most_common() if keep(frame)
        ][:top]

    if not total:
        return {"samples": 0, "self": [], "product_inclusive": []}
    return {
        "samples": total,
        "self": share(own, lambda frame: True),
        "product_inclusive": share(
            inclusive, lambda frame: any(part in frame for part in _PRODUCT_PARTS)
        ),
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"{summary.get('samples', 0)} samples"]
    lines += [f"  self {pct:5.1f}%  {frame}" for pct, frame in summary.get("self", [])]
    lines += [f"  incl {pct:5.1f}%  {frame}" for pct, frame in summary.get("product_inclusive", [])]
    return "\n".join(lines)


def read(path: Path) -> dict[str, Any]:
    return summarize(path.read_text().splitlines())
