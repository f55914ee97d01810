"""``bench-throttle``: the destination gate's rate limit, held by two worker processes at once.

Two processes (each 4 threads, like a worker) acquire permits from the gate of one destination
with ``rate_limit_per_second=50`` and ``max_concurrency=8`` — the shared state is the bench
PostgreSQL database — and send each request to the bench sink for SECONDS. Figures: the
requests/s achieved (from the permit times of both processes, first to last), as a ratio of
the limit (target: within 5 %, and never above); the most requests in any 1-second window,
from the sink's count and from the permit times merged (must be <= 50).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from bench import stack
from bench.cases.common import Outcome
from bench.results import Row, target

RATE = 50
PROCESSES = 2
THREADS = 4
SECONDS = 20


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def bench_throttle(ctx) -> Outcome:
    ctx.django()
    sink = ctx.sink()
    sink.reset()
    destination = str(uuid.uuid4())
    out_dir = stack.LOG_DIR / "throttle"
    out_dir.mkdir(parents=True, exist_ok=True)
    start_at = time.monotonic() + 8  # both processes start sending together (after Django)
    children = [
        subprocess.Popen(
            [
                str(stack.VENV_BIN / "python"),
                "-m",
                "bench.cases.throttle",
                destination,
                str(start_at),
                str(sink.port),
                str(out_dir / f"times-{n}.json"),
            ],
            cwd=stack.REPO,
            env={**os.environ, **stack.bench_env()},
        )
        for n in range(PROCESSES)
    ]
    for child in children:
        if child.wait(timeout=SECONDS + 120) != 0:
            raise RuntimeError("a throttle process failed")
    per_process = [json.loads((out_dir / f"times-{n}.json").read_text()) for n in range(PROCESSES)]
    times = sorted(t for process in per_process for t in process)
    counted = sink.stats()["requests"]
    achieved = (len(times) - 1) / (times[-1] - times[0])
    most = max_in_any_window(times)
    return Outcome(
        what=f"requests/s to one destination limited to {RATE}/s, sent by {PROCESSES} "
        f"processes x {THREADS} threads for {SECONDS} s (shared state in PostgreSQL)",
        rows=[
            Row(
                figure=f"achieved requests/s at rate_limit_per_second={RATE}",
                unit="req/s",
                product=achieved,
                baseline=RATE,
                target=target(">=", 0.95),
                checks={
                    "never above the limit on average": achieved <= RATE,
                    f"never more than {RATE} in any 1-second window": most <= RATE,
                    "every request reached the sink": counted == len(times),
                    "both processes sent": all(per_process),
                },
                note=f"most in any 1-second window: {most}; per process: "
                + ", ".join(str(len(p)) for p in per_process),
            )
        ],
        details={"requests": len(times), "sink_requests": counted, "max_in_1s": most},
    )


def _child(destination: str, start_at: str, port: str, out_file: str) -> None:
    stack.setup_django()
    from osmos.outbound.client import OutboundSession
    from osmos.outbound.gate import close_all, destination_gate

    gate = destination_gate(uuid.UUID(destination), rate_per_second=RATE, max_concurrency=8)
    time.sleep(max(0.0, float(start_at) - time.monotonic()))
    ends = time.monotonic() + SECONDS
    times: list[float] = []
    url = f"http://127.0.0.1:{port}/throttle"

    def sender() -> None:
        from django.db import connection

        with OutboundSession() as session:
            while time.monotonic() < ends:
                permit = gate.acquire(max_wait=1)
                if permit is None:
                    continue
                with permit:
                    times.append(time.monotonic())
                    session.send(
                        "POST", url, headers=[], body=b'{"id": 1}', idempotency_key="k", timeout=5
                    )
        connection.close()

    threads = [threading.Thread(target=sender) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_all()
    Path(out_file).write_text(json.dumps(times))


if __name__ == "__main__":
    _child(*sys.argv[1:])
