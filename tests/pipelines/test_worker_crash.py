"""A real worker process killed with SIGKILL mid-run; the run resumes on another and every
record is accounted for exactly once (duplicates at the sink carry the same Idempotency-Key).

Needs a broker shared between processes: skipped unless DRAMATIQ_BROKER_URL is set (CI sets
it to Redis). Works on SQLite (the test database file) and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from pipelines.models import ChunkState, RecordFailure, RunChunk, RunState
from pipelines.scheduler import scheduler_tick
from pipelines.services import run_create
from tests.support.delivery import make_destination, make_pipeline, make_source
from tests.support.sink import Answer

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.broker,
    pytest.mark.skipif(
        not os.environ.get("DRAMATIQ_BROKER_URL"),
        reason="needs a real broker (DRAMATIQ_BROKER_URL): the in-process stub broker cannot "
        "reach a worker in another process",
    ),
]


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


class Workers:
    """Worker processes started by this test, each in its own process group."""

    def __init__(self, log_dir: Path, extra_env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "DRAMATIQ_BROKER_URL": os.environ["DRAMATIQ_BROKER_URL"],
            "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
            "ENCRYPTION_KEYS": ",".join(django_settings.ENCRYPTION_KEYS),
            "SECRET_KEY": django_settings.SECRET_KEY,
            "DELIVERY_RETRY_SCHEDULE": "0.05,0.05",
            "DELIVERY_QUICK_RETRY_SECONDS": "0",
            "RUN_HEARTBEAT_TIMEOUT_SECONDS": "5",
            # A killed worker's gate slots come back after the lease (30 s by default).
            "OUTBOUND_GATE_LEASE_SECONDS": "2",
            **extra_env,
        }
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        log = open(self.log_dir / f"worker-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        # The whole group: rundramatiq execs dramatiq, which forks the worker processes.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def kill_all(self) -> None:
        for process in self.processes:
            self.kill(process)


@pytest.fixture
def workers(tmp_path, settings):
    settings.RUN_HEARTBEAT_TIMEOUT_SECONDS = 5
    group = Workers(tmp_path, {})
    yield group
    group.kill_all()


def _wait(predicate, *, timeout: float, tick: bool = False, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick:
            scheduler_tick()
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _assert_accounted_exactly_once(run, sink, total: int) -> None:
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    assert run.records_total == total
    assert run.records_delivered + run.records_failed == total
    assert run.records_failed == 0
    assert not RecordFailure.objects.filter(run=run).exists()
    assert not RunChunk.objects.filter(run=run, state=ChunkState.PENDING).exists()
    keys_by_id: dict[int, set[str]] = {}
    for request in sink.requests:
        body = request.json()
        for record in body if isinstance(body, list) else [body]:
            keys_by_id.setdefault(record["id"], set()).add(request.header("Idempotency-Key"))
    assert sorted(keys_by_id) == list(range(1, total + 1))
    assert all(len(keys) == 1 for keys in keys_by_id.values()), "a duplicate had a new key"
    assert run.attempts >= 3


def _kill_twice_then_finish(run, sink, workers, steps: tuple[int, int]) -> None:
    for received in steps:
        worker = workers.start()
        _wait(
            lambda n=received: len(sink.requests) >= n,
            timeout=60,
            tick=True,
            what=f"{received} requests at the sink",
        )
        workers.kill(worker)
    workers.start()
    _wait(
        lambda: run.refresh_from_db() or run.finished_at is not None,
        timeout=90,
        tick=True,
        what="the run to finish",
    )


def test_batch_run_survives_workers_killed_mid_run(org_a, sink, workers):
    def slow(request):
        time.sleep(0.15)
        return Answer(200, b"{}")

    sink.behave = slow
    destination = make_destination(org_a, sink.url, batch_size=10)
    pipeline = make_pipeline(org_a, make_source(org_a, count=200), destination)
    run = run_create(pipeline=pipeline, trigger="api")
    _kill_twice_then_finish(run, sink, workers, steps=(4, 10))
    _assert_accounted_exactly_once(run, sink, 200)


def test_single_run_survives_workers_killed_mid_run(org_a, sink, workers):
    workers.env["DELIVERY_SINGLE_CHUNK_RECORDS"] = "20"

    def slow(request):
        time.sleep(0.03)
        return Answer(200, b"{}")

    sink.behave = slow
    destination = make_destination(org_a, sink.url, write_mode="single", max_concurrency=2)
    pipeline = make_pipeline(org_a, make_source(org_a, count=150), destination)
    run = run_create(pipeline=pipeline, trigger="api")
    _kill_twice_then_finish(run, sink, workers, steps=(30, 80))
    _assert_accounted_exactly_once(run, sink, 150)


def test_a_waiting_run_whose_worker_was_killed_is_resumed_on_time(org_a, sink, workers, settings):
    workers.env["DELIVERY_RETRY_SCHEDULE"] = "4"
    settings.RUN_ENQUEUE_GRACE_SECONDS = 1
    answers = iter([503])
    times: list[float] = []

    def first_503(request):
        times.append(time.time())
        return Answer(next(answers, 200), b"{}")

    sink.behave = first_503
    destination = make_destination(org_a, sink.url, batch_size=50)
    pipeline = make_pipeline(org_a, make_source(org_a, count=50), destination)
    run = run_create(pipeline=pipeline, trigger="api")
    worker = workers.start()
    _wait(
        lambda: run.refresh_from_db() or run.state == RunState.WAITING,
        timeout=60,
        what="the run to wait",
    )
    workers.kill(worker)  # with the run's delayed message in its hands
    due = run.waiting_until.timestamp()
    workers.start()
    _wait(
        lambda: run.refresh_from_db() or run.finished_at is not None,
        timeout=60,
        tick=True,
        what="the run to finish",
    )
    assert (run.state, run.records_delivered, run.resumes) == (RunState.SUCCEEDED, 50, 0)
    assert len(times) == 2
    # Not before its time, and within the sweep's grace (and a tick) after it.
    assert due - 0.5 <= times[1] <= due + 8
