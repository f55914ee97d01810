"""Workers killed with SIGKILL again and again during one run, two of them at a time.

Goes further than tests/pipelines/test_worker_crash.py (two kills, one worker at a time):
three rounds, each killing one of two live workers (whichever it is, holder of the run or
not; both in the last round) at a moment set by the sink's progress, while the sink
answers some requests with 503s; the scheduler process resumes the run after each kill.
At the end: the run succeeded, delivered + failed = total with none failed, every record
reached the sink, and every repeat of a record carried the same Idempotency-Key. Batch
and single mode.

Runs its own Redis (never the machine's shared one), so it needs no broker setting.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
from collections import defaultdict

import pytest

from ingest.services import records_ingest
from pipelines.models import RecordFailure, Run, RunState
from pipelines.services import run_create
from tests.reliability.processes import Children, OwnRedis, child_env, free_port, wait_for
from tests.support.factories import build_world
from tests.support.schemas import id_records as schema_records
from tests.support.sink import Answer, Sink

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.reliability,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


@pytest.fixture
def own_redis():
    redis = OwnRedis(free_port())
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def children(tmp_path):
    group = Children(tmp_path)
    yield group
    group.kill_all()


def _slow_and_sometimes_503(seed: int, delay: float):
    rng = random.Random(seed)
    lock = threading.Lock()

    def behave(_request):
        with lock:
            unlucky = rng.random() < 0.1
        return Answer(503, b"{}") if unlucky else Answer(200, b"{}", delay=delay)

    return behave


@pytest.mark.parametrize(
    ("write_mode", "records", "steps"),
    [("batch", 300, (8, 20, 35)), ("single", 240, (40, 100, 160))],
)
def test_a_run_survives_repeated_worker_kills(
    org_a, member, own_redis, children, write_mode, records, steps
):
    env = child_env(
        DRAMATIQ_BROKER_URL=own_redis.url,
        RUN_HEARTBEAT_TIMEOUT_SECONDS="5",
        # A killed worker's gate slots come back after the lease (30 s by default).
        OUTBOUND_GATE_LEASE_SECONDS="2",
        SCHEDULER_INTERVAL_SECONDS="0.5",
        RUN_ENQUEUE_GRACE_SECONDS="1",
        RUN_REQUEUE_AFTER_SECONDS="10",
        DELIVERY_RETRY_SCHEDULE="0.05,0.05,0.05,0.05,0.05",
        DELIVERY_QUICK_RETRY_SECONDS="0",
        DELIVERY_SINGLE_CHUNK_RECORDS="20",
    )
    delay = 0.06 if write_mode == "batch" else 0.02
    with Sink(_slow_and_sometimes_503(len(steps), delay)) as sink:
        world = build_world(org_a, member_user=member, sink_url=sink.url)
        records_ingest(
            source=world.source.source,
            body=json.dumps(schema_records(records - 50, start=51)).encode(),
            content_type="application/json",
            content_encoding=None,
            idempotency_key=None,
        )
        settings_row = world.destination.destination
        settings_row.write_mode = write_mode
        settings_row.batch_size = 5
        settings_row.save()
        run = run_create(pipeline=world.pipeline, trigger="api")

        worker_args = ["rundramatiq", "--processes", "1", "--threads", "2"]
        workers = [children.start(worker_args, env, "worker") for _ in range(2)]
        children.start(["run_scheduler"], env, "scheduler")
        victims = random.Random(len(steps))
        try:
            for received in steps:
                wait_for(
                    lambda n=received: len(sink.requests) >= n,
                    timeout=90,
                    what=f"{received} requests at the sink",
                    every=0.02,
                )
                # One of the two at random; in the last round both, so that the worker holding
                # the run is surely killed at least once.
                if received == steps[-1]:
                    doomed, workers = workers, []
                else:
                    doomed = [workers.pop(victims.randrange(len(workers)))]
                for victim in doomed:
                    children.kill(victim)
                    workers.append(children.start(worker_args, env, "worker"))
            wait_for(
                lambda: Run.objects.get(pk=run.pk).finished_at is not None,
                timeout=120,
                what="the run to finish",
            )
        except AssertionError:
            raise AssertionError(children.logs()) from None
        requests = sink.requests

    run.refresh_from_db()
    assert not RecordFailure.objects.filter(run=run).exists()
    assert run.state == RunState.SUCCEEDED
    assert (run.records_total, run.records_delivered, run.records_failed) == (records, records, 0)
    keys_by_record: dict[int, set[str]] = defaultdict(set)
    for request in requests:
        body = json.loads(request.body)
        for record in body if isinstance(body, list) else [body]:
            keys_by_record[record["id"]].add(request.header("Idempotency-Key"))
    assert sorted(keys_by_record) == list(range(1, records + 1)), "a record never reached the sink"
    assert all(len(keys) == 1 for keys in keys_by_record.values()), "a repeat had a new key"
    assert run.attempts >= 2, "the run was never resumed: no kill hit its worker"
