"""Run benchmarks: ``python bench/run.py [NAME …]`` (no name = all; ``make bench``).

Names are ``bench-validate``, ``validate``… (see ``BENCHMARKS``). For each one the runner
starts what it needs once (the ``osmos_bench`` database, migrated; gunicorn; the sink;
Dramatiq workers), runs it, writes ``bench/results/<name>.json`` and regenerates the table in
``docs/benchmarks.md``. A benchmark that fails is reported and the others still run; the exit
status is 1 when any failed to run (a missed target is a result, not a failure).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import results, stack
from bench.cases.common import Outcome


class Context:
    """The parts of the stack, started on first use and stopped at the end of the run."""

    def __init__(self) -> None:
        self._django = False
        self._gunicorn: stack.ManagedProcess | None = None
        self._workers: stack.ManagedProcess | None = None
        self._sink: stack.Sink | None = None
        self.gunicorn_port = 0
        self.gunicorn_workers = stack.GUNICORN_WORKERS
        self.postgres_version: str | None = None
        self.deliver_fixture = None

    def django(self) -> None:
        if not self._django:
            stack.recreate_database()
            stack.setup_django()
            stack.migrate()
            stack.flush_broker()
            self.postgres_version = stack.postgres_version()
            self._django = True

    def gunicorn(self) -> str:
        """The base URL of the product's gunicorn."""
        self.django()
        if self._gunicorn is None:
            self.gunicorn_port = stack.free_port()
            self._gunicorn = stack.start_gunicorn(port=self.gunicorn_port)
        return f"http://127.0.0.1:{self.gunicorn_port}"

    def gunicorn_pids(self) -> list[int]:
        """The gunicorn worker processes (children of the arbiter)."""
        self.gunicorn()
        return self._gunicorn.descendants()

    def sink(self) -> stack.Sink:
        if self._sink is None:
            self._sink = stack.Sink()
        return self._sink

    def workers(self) -> stack.ManagedProcess:
        self.django()
        if self._workers is None:
            self._workers = stack.start_workers()
        return self._workers

    def restart_workers(self, *, processes: int = 1, threads: int = 4) -> stack.ManagedProcess:
        if self._workers is not None:
            self._workers.stop()
        self._workers = stack.start_workers(processes=processes, threads=threads)
        return self._workers

    def stop_gunicorn(self) -> None:
        """Free the CPU gunicorn's idle workers would not use anyway (memory only)."""
        if self._gunicorn is not None:
            self._gunicorn.stop()
            self._gunicorn = None

    def close(self) -> None:
        for process in (self._gunicorn, self._workers, self._sink):
            if process is not None:
                process.stop()


def _benchmarks() -> dict[str, Callable[[Context], Outcome]]:
    from bench.cases import validate

    found: dict[str, Callable[[Context], Outcome]] = {"bench-validate": validate.bench_validate}
    try:
        from bench.cases import sinkcap

        found["bench-sink"] = sinkcap.bench_sink
    except ImportError:
        pass
    try:
        from bench.cases import ingest

        found["bench-ingest"] = ingest.bench_ingest
        found["bench-ingest-small"] = ingest.bench_ingest_small
    except ImportError:
        pass
    try:
        from bench.cases import deliver

        found["bench-deliver-batch"] = deliver.bench_deliver_batch
        found["bench-deliver-single"] = deliver.bench_deliver_single
        found["bench-memory"] = deliver.bench_memory
        found["bench-bisect"] = deliver.bench_bisect
    except ImportError:
        pass
    try:
        from bench.cases import throttle

        found["bench-throttle"] = throttle.bench_throttle
    except ImportError:
        pass
    try:
        from bench.cases import resilience

        found["bench-outage-recovery"] = resilience.bench_outage_recovery
        found["bench-fairness"] = resilience.bench_fairness
    except ImportError:
        pass
    order = {name: index for index, name in enumerate(results.ORDER)}
    return dict(sorted(found.items(), key=lambda item: order.get(item[0], 99)))


def _normalise(name: str) -> str:
    return name if name.startswith("bench-") else f"bench-{name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run osmos benchmarks.")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args(argv)
    available = _benchmarks()
    names = [_normalise(n) for n in args.names] or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {list(available)}")
    ctx = Context()
    failed = []
    started_all = time.monotonic()
    try:
        for name in names:
            print(f"== {name}", flush=True)
            started = time.monotonic()
            try:
                outcome = available[name](ctx)
            except Exception:
                traceback.print_exc()
                failed.append(name)
                continue
            elapsed = time.monotonic() - started
            path = results.write_result(
                name=name,
                what=outcome.what,
                rows=outcome.rows,
                machine=results.machine_info(postgres_version=ctx.postgres_version),
                details=outcome.details,
                notes=outcome.notes,
                duration_seconds=elapsed,
            )
            for row in outcome.rows:
                ratio = "-" if row.ratio is None else f"{row.ratio:.3f}"
                print(
                    f"   {row.figure}: product {row.product:.4g} {row.unit}, baseline "
                    f"{row.baseline if row.baseline is None else f'{row.baseline:.4g}'}, "
                    f"ratio {ratio}, target {row.target}, met {row.met}",
                    flush=True,
                )
            print(f"   {elapsed:.1f} s -> {path.relative_to(results.REPO)}", flush=True)
            results.update_doc()
    finally:
        ctx.close()
    print(f"== all done in {time.monotonic() - started_all:.0f} s; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
