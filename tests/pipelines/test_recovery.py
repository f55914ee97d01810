"""Nothing lost: stale runs resumed, never-enqueued runs swept, cancel, retry of failures.

The worker-killed-by-SIGKILL test with real processes is in test_worker_crash.py.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import dramatiq
import pytest
from django.utils import timezone

from pipelines import delivery
from pipelines.models import ChunkState, RecordFailure, Run, RunChunk, RunState
from pipelines.scheduler import scheduler_tick
from pipelines.services import run_cancel, run_create, run_retry_failed
from tests.support.delivery import (
    make_destination,
    make_pipeline,
    make_source,
    wait_for_run,
)
from tests.support.sink import Answer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pipeline(org_a, sink):
    destination = make_destination(org_a, sink.url, batch_size=10)
    return make_pipeline(org_a, make_source(org_a, count=50), destination)


def _ids_per_request(sink):
    return [tuple(record["id"] for record in request.json()) for request in sink.requests]


def _crash_after_first_chunk(run, settings):
    """What a worker that died after confirming chunk 0 leaves in the database."""
    settings.DELIVERY_RUN_SLICE_SECONDS = 0  # one chunk, then the lease is released
    delivery.run_execute(run_id=run.id)
    dramatiq.get_broker().flush_all()  # the continuation message is lost with the worker
    Run.objects.filter(pk=run.id).update(
        lease_token=uuid.uuid4(), heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    settings.DELIVERY_RUN_SLICE_SECONDS = 300


def test_stale_run_is_resumed_by_the_sweep_without_resending_confirmed_chunks(
    pipeline, sink, broker, settings
):
    run = run_create(pipeline=pipeline, trigger="api")
    broker.flush_all()
    _crash_after_first_chunk(run, settings)
    assert _ids_per_request(sink) == [tuple(range(1, 11))]
    run.refresh_from_db()
    assert (run.state, run.records_delivered) == (RunState.RUNNING, 10)

    report = scheduler_tick()
    assert report.runs_resumed == 1
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    try:
        run = wait_for_run(run)
    finally:
        worker.stop()
    assert (run.state, run.records_delivered, run.records_failed) == (RunState.SUCCEEDED, 50, 0)
    assert _ids_per_request(sink) == [tuple(range(i, i + 10)) for i in range(1, 51, 10)]
    assert run.attempts == 2
    keys = [request.header("Idempotency-Key") for request in sink.requests]
    assert keys == list(RunChunk.objects.filter(run=run).values_list("idempotency_key", flat=True))


def test_the_sweep_leaves_a_run_with_a_live_heartbeat_alone(pipeline, broker):
    run = run_create(pipeline=pipeline, trigger="api")
    token = uuid.uuid4()
    Run.objects.filter(pk=run.id).update(
        state=RunState.RUNNING, lease_token=token, heartbeat_at=timezone.now()
    )
    assert scheduler_tick().runs_resumed == 0
    run.refresh_from_db()
    assert run.lease_token == token


def test_a_second_message_for_a_run_held_by_a_live_worker_does_nothing(pipeline, sink, broker):
    run = run_create(pipeline=pipeline, trigger="api")
    token = uuid.uuid4()
    Run.objects.filter(pk=run.id).update(
        state=RunState.RUNNING, lease_token=token, heartbeat_at=timezone.now()
    )
    delivery.run_execute(run_id=run.id)
    run.refresh_from_db()
    assert (run.lease_token, run.planned_at, sink.requests) == (token, None, [])


def test_two_workers_racing_for_one_run_send_each_chunk_once(pipeline, sink, broker):
    run = run_create(pipeline=pipeline, trigger="api")
    broker.flush_all()
    barrier = threading.Barrier(2)

    def execute():
        barrier.wait()
        try:
            delivery.run_execute(run_id=run.id)
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=execute) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    run = wait_for_run(run)
    assert run.records_delivered == 50
    assert sorted(_ids_per_request(sink)) == [tuple(range(i, i + 10)) for i in range(1, 51, 10)]


def test_a_run_committed_but_never_enqueued_is_enqueued_by_the_sweep(pipeline, sink, worker):
    # As if the process died between the commit and the send to the broker.
    run = Run.objects.create(
        organization=pipeline.organization,
        pipeline=pipeline,
        trigger="api",
        sequence_from=0,
        sequence_to=50,
        mapping=pipeline.mapping,
    )
    Run.objects.filter(pk=run.id).update(created_at=timezone.now() - timedelta(minutes=1))
    report = scheduler_tick()
    assert report.runs_enqueued == 1
    run = wait_for_run(run)
    assert (run.state, run.records_delivered) == (RunState.SUCCEEDED, 50)
    assert run.enqueued_at is not None


def test_a_fresh_unenqueued_run_is_left_to_its_own_on_commit_send(pipeline, broker):
    run = Run.objects.create(
        organization=pipeline.organization, pipeline=pipeline, trigger="api", mapping={}
    )
    assert scheduler_tick().runs_enqueued == 0
    run.refresh_from_db()
    assert run.enqueued_at is None


def test_a_cancelled_run_sends_no_more_and_accounts_unsent_records_as_failed(
    pipeline, sink, worker
):
    entered, release = threading.Event(), threading.Event()

    def hold_first(request):
        if not entered.is_set():
            entered.set()
            release.wait(10)
        return Answer(200, b"{}")

    sink.behave = hold_first
    run = run_create(pipeline=pipeline, trigger="api")
    assert entered.wait(10)
    run_cancel(run=run)
    release.set()
    run = wait_for_run(run)
    assert run.state == RunState.CANCELLED
    assert (run.records_total, run.records_delivered, run.records_failed) == (50, 10, 40)
    assert len(sink.requests) == 1
    reasons = set(RecordFailure.objects.filter(run=run).values_list("reason", flat=True))
    assert reasons == {delivery.CANCELLED_REASON}
    assert not RunChunk.objects.filter(run=run, state=ChunkState.PENDING).exists()


def test_a_queued_run_cancelled_before_any_worker_sends_nothing(pipeline, sink, broker):
    run = run_create(pipeline=pipeline, trigger="api")
    run_cancel(run=run)
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    try:
        run = wait_for_run(run)
    finally:
        worker.stop()
    assert (run.state, run.records_failed, sink.requests) == (RunState.CANCELLED, 50, [])


def test_retry_failed_sends_exactly_the_failed_records_again(pipeline, sink, worker):
    refusing = {"on": True}

    def refuse_7(request):
        ids = {record["id"] for record in request.json()}
        return Answer(422, b"no") if refusing["on"] and 7 in ids else Answer(200, b"{}")

    sink.behave = refuse_7
    first = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert (first.records_delivered, first.records_failed) == (40, 10)
    refusing["on"] = False
    sink.clear()
    retry = wait_for_run(run_retry_failed(run=first))
    assert (retry.trigger, retry.state, retry.records_total) == ("retry", RunState.SUCCEEDED, 10)
    assert _ids_per_request(sink) == [tuple(range(1, 11))]
    first.refresh_from_db()
    assert first.records_failed == 10  # history is not rewritten


def test_delivered_plus_failed_equals_total_with_mixed_outcomes(org_a, sink, worker):
    destination = make_destination(org_a, sink.url, batch_size=7, split_failed_batches=True)
    pipeline = make_pipeline(org_a, make_source(org_a, count=60), destination)

    def mixed(request):
        ids = {record["id"] for record in request.json()}
        if ids & {3, 4, 41}:
            return Answer(400, b"bad")
        if ids & {20}:
            return Answer(503, b"down")
        return Answer(200, b"{}")

    sink.behave = mixed
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert run.records_delivered + run.records_failed == run.records_total == 60
    assert RecordFailure.objects.filter(run=run).count() == run.records_failed
    failed = set(RecordFailure.objects.filter(run=run).values_list("sequence", flat=True))
    assert {3, 4, 41, 20} <= failed


def test_a_run_that_keeps_losing_its_worker_gives_up_and_fails_only_unsent_records(
    pipeline, sink, broker, settings
):
    settings.RUN_MAX_RESUMES = 2
    run = run_create(pipeline=pipeline, trigger="api")
    broker.flush_all()
    _crash_after_first_chunk(run, settings)
    for _ in range(3):  # the sweep finds it dead three times (the worker "dies" each time)
        assert scheduler_tick().runs_resumed == 1
        broker.flush_all()
        Run.objects.filter(pk=run.id).update(
            lease_token=uuid.uuid4(), heartbeat_at=timezone.now() - timedelta(hours=1)
        )
    assert scheduler_tick().runs_resumed == 1
    delivery.run_execute(run_id=run.id)
    run.refresh_from_db()
    assert (run.resumes, run.state) == (4, RunState.PARTIALLY_FAILED)
    assert (run.records_delivered, run.records_failed, run.records_total) == (10, 40, 50)
    assert len(sink.requests) == 1
    reason = RecordFailure.objects.filter(run=run).first().reason
    assert "interrupted 4 times" in reason


def test_a_slow_worker_whose_lease_was_taken_counts_nothing_and_the_chunk_is_resent_with_its_key(
    pipeline, sink, broker
):
    entered, release = threading.Event(), threading.Event()

    def hold_first(request):
        if not entered.is_set():
            entered.set()
            release.wait(10)
        return Answer(200, b"{}")

    sink.behave = hold_first
    run = run_create(pipeline=pipeline, trigger="api")
    broker.flush_all()

    def first_worker():
        try:
            delivery.run_execute(run_id=run.id)
        finally:
            from django.db import connection

            connection.close()

    slow = threading.Thread(target=first_worker)
    slow.start()
    assert entered.wait(10)
    # The heartbeat looks stale (e.g. a long pause): the sweep hands the run to another worker.
    Run.objects.filter(pk=run.id).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert scheduler_tick().runs_resumed == 1
    release.set()
    slow.join(timeout=20)
    run.refresh_from_db()
    assert (run.records_delivered, run.finished_at) == (0, None)  # its confirm was refused

    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    try:
        run = wait_for_run(run)
    finally:
        worker.stop()
    assert (run.records_total, run.records_delivered, run.records_failed) == (50, 50, 0)
    first_chunk = [r for r in sink.requests if r.json()[0]["id"] == 1]
    assert len(first_chunk) == 2
    assert first_chunk[0].header("Idempotency-Key") == first_chunk[1].header("Idempotency-Key")


def test_a_run_queued_for_too_long_is_enqueued_again(pipeline, sink, worker):
    run = Run.objects.create(
        organization=pipeline.organization,
        pipeline=pipeline,
        trigger="api",
        sequence_to=50,
        mapping=pipeline.mapping,
    )
    Run.objects.filter(pk=run.id).update(enqueued_at=timezone.now() - timedelta(hours=1))
    assert scheduler_tick().runs_enqueued == 1
    run = wait_for_run(run)
    assert run.records_delivered == 50


def test_a_cancel_interrupts_a_retry_wait_instead_of_sleeping_through_it(
    pipeline, sink, worker, settings
):
    import time

    settings.RUN_HEARTBEAT_TIMEOUT_SECONDS = 5  # heartbeat (and cancel check) every 1.25 s
    sink.behave = lambda request: Answer(503, b"later", (("Retry-After", "5"),))
    run = run_create(pipeline=pipeline, trigger="api")
    deadline = time.monotonic() + 10
    while not sink.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    run_cancel(run=run)
    run = wait_for_run(run)
    assert time.monotonic() - started < 4
    assert (run.state, run.records_failed, len(sink.requests)) == (RunState.CANCELLED, 50, 1)
    assert set(RecordFailure.objects.values_list("reason", flat=True)) == {
        delivery.CANCELLED_REASON
    }
