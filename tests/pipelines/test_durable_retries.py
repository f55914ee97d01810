"""Delivery that survives real APIs (issue 11, SPEC §5.1 to §5.3), against the loopback sink of
``tests.support.sink`` with a compressed retry schedule.
"""

from __future__ import annotations

import threading
import time

import dramatiq
import pytest

from connectors.health import destination_resume
from connectors.models import DestinationHealth, HealthState
from osmos.notifications.models import Event, Notification
from pipelines.models import ChunkState, RecordFailure, Run, RunChunk, RunState
from pipelines.scheduler import scheduler_tick
from pipelines.senders import CANCELLED_REASON
from pipelines.services import run_cancel, run_create
from tests.support.delivery import make_destination, make_pipeline, make_source, wait_for_run
from tests.support.sink import (
    Sink,
    drip,
    for_seconds,
    ok,
    reject_ids,
    status,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def loopback(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with Sink() as sink:
        yield sink


@pytest.fixture
def one_thread(broker, transactional_db):
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    yield worker
    worker.stop()


def _until(predicate, *, timeout: float, what: str, tick: bool = False):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick:
            scheduler_tick()
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _state(run: Run) -> str:
    run.refresh_from_db()
    return run.state


def _keys_by_id(sink: Sink) -> dict[int, set[str]]:
    keys: dict[int, set[str]] = {}
    for request in sink.requests:
        for record in request.records():
            keys.setdefault(record["id"], set()).add(request.header("Idempotency-Key"))
    return keys


@pytest.mark.parametrize("mode", ["batch", "single"])
def test_an_outage_makes_the_run_wait_then_succeed_without_holding_the_worker(
    org_a, loopback, one_thread, settings, mode
):
    settings.DELIVERY_RETRY_SCHEDULE = (0.3, 0.5, 1, 1, 1, 1, 1, 1, 1, 1)
    # The outage (compressed): 503s, then connection refused, then the API is back.
    loopback.behave = for_seconds(1.5, status(503))
    destination = make_destination(org_a, loopback.url, write_mode=mode, batch_size=10)
    run = run_create(
        pipeline=make_pipeline(org_a, make_source(org_a, count=50), destination), trigger="api"
    )
    _until(lambda: _state(run) == RunState.WAITING, timeout=20, what="the run to wait")
    assert run.waiting_until is not None
    assert "503" in run.last_error
    loopback.refuse_for(1.5)
    # Meanwhile, with the only worker thread, another pipeline's run goes through.
    with Sink() as other:
        elsewhere = make_destination(org_a, other.url, name="Elsewhere")
        source = make_source(org_a, name="Others", count=50)
        other_run = run_create(
            pipeline=make_pipeline(org_a, source, elsewhere, name="other"), trigger="api"
        )
        other_run = wait_for_run(other_run, timeout=20)
        assert other_run.state == RunState.SUCCEEDED
    run = wait_for_run(run, timeout=40)
    assert (run.state, run.records_delivered, run.records_failed) == (RunState.SUCCEEDED, 50, 0)
    assert run.resumes == 0  # waiting is not a crash
    accepted = sorted(record["id"] for record in loopback.accepted_records())
    assert accepted == list(range(1, 51))  # each record accepted once
    assert all(len(keys) == 1 for keys in _keys_by_id(loopback).values())  # stable keys
    assert RunChunk.objects.filter(run=run, state=ChunkState.DONE).count() == run.chunks.count()


def test_a_waiting_run_is_cancelled_at_once_with_its_unsent_records_failed(
    org_a, loopback, worker, settings
):
    settings.DELIVERY_RETRY_SCHEDULE = (60,)
    loopback.behave = status(503)
    destination = make_destination(org_a, loopback.url, batch_size=10)
    run = run_create(
        pipeline=make_pipeline(org_a, make_source(org_a, count=50), destination), trigger="api"
    )
    _until(lambda: _state(run) == RunState.WAITING, timeout=20, what="the run to wait")
    started = time.monotonic()
    run_cancel(run=run)
    run = wait_for_run(run, timeout=10)
    assert time.monotonic() - started < 5
    assert (run.state, run.records_failed, run.records_delivered) == (RunState.CANCELLED, 50, 0)
    reasons = set(RecordFailure.objects.filter(run=run).values_list("reason", flat=True))
    assert reasons == {CANCELLED_REASON}


def test_retry_after_keeps_the_next_request_away_for_that_long(org_a, loopback, worker, settings):
    settings.DELIVERY_RETRY_SCHEDULE = (0.1, 0.1)
    settings.DELIVERY_QUICK_RETRY_SECONDS = 0.2
    loopback.behave = for_seconds(0.5, status(429, retry_after="3"))
    destination = make_destination(org_a, loopback.url, batch_size=50)
    run = run_create(
        pipeline=make_pipeline(org_a, make_source(org_a, count=50), destination), trigger="api"
    )
    run = wait_for_run(run, timeout=20)
    assert run.state == RunState.SUCCEEDED
    first, second = loopback.requests[:2]
    assert first.answered == 429
    assert second.at - first.at >= 2.9


def test_gone_pauses_the_destination_until_a_person_resumes_it(org_a, loopback, worker, settings):
    loopback.behave = status(410, body=b'{"error": "gone"}')
    destination = make_destination(org_a, loopback.url, batch_size=50)
    source = make_source(org_a, count=50)
    run = run_create(pipeline=make_pipeline(org_a, source, destination), trigger="api")
    _until(lambda: _state(run) == RunState.WAITING, timeout=20, what="the run to wait")
    assert run.waiting_until is None
    health = DestinationHealth.objects.get(connector=destination)
    assert health.state == HealthState.PAUSED
    # A run of another pipeline to the paused destination sends nothing either.
    second = run_create(
        pipeline=make_pipeline(org_a, source, destination, name="second", sync_mode="full"),
        trigger="api",
    )
    _until(lambda: _state(second) == RunState.WAITING, timeout=20, what="the second to wait")
    time.sleep(1)
    assert len(loopback.requests) == 1
    for _ in range(3):
        scheduler_tick()  # the sweep leaves runs of a paused destination alone
    assert len(loopback.requests) == 1
    assert RecordFailure.objects.count() == 0

    loopback.behave = ok
    destination_resume(connector=destination)
    assert wait_for_run(run, timeout=20).state == RunState.SUCCEEDED
    assert wait_for_run(second, timeout=20).state == RunState.SUCCEEDED
    assert run.records_delivered == second.records_delivered == 50


def test_a_failing_destination_is_probed_by_one_run_and_its_recovery_resumes_all(
    org_a, loopback, worker, settings
):
    settings.DESTINATION_FAILING_AFTER_SECONDS = 0
    settings.DELIVERY_RETRY_SCHEDULE = (1.5, 30, 30)
    loopback.behave = status(503)
    destination = make_destination(org_a, loopback.url, batch_size=50)
    source = make_source(org_a, count=50)
    first = run_create(pipeline=make_pipeline(org_a, source, destination), trigger="api")
    _until(lambda: _state(first) == RunState.WAITING, timeout=20, what="the first to wait")
    assert DestinationHealth.objects.get(connector=destination).state == HealthState.FAILING
    others = [
        run_create(
            pipeline=make_pipeline(org_a, source, destination, name=f"p{n}", sync_mode="full"),
            trigger="api",
        )
        for n in range(2)
    ]
    for other in others:
        _until(lambda o=other: _state(o) == RunState.WAITING, timeout=20, what="others to wait")
    assert len(loopback.requests) == 1  # the others did not try: one probe at a time
    loopback.behave = ok
    # The probe (the first run, after 1.5 s) succeeds; every waiting run resumes at once,
    # long before its own 30 s step.
    for run in (first, *others):
        assert wait_for_run(run, timeout=15).state == RunState.SUCCEEDED
    health = DestinationHealth.objects.get(connector=destination)
    assert health.state == HealthState.HEALTHY
    # Three runs waited on it and the probe failed again and again: one incident, told once
    # when it began and once when it ended (SPEC §5.5).
    events = Notification.objects.filter(organization=org_a).order_by("created_at")
    assert list(events.values_list("event", flat=True)) == [
        Event.DESTINATION_FAILING,
        Event.DESTINATION_HEALTHY,
    ]
    assert {n.subject_id for n in events} == {destination.pk}


def test_failed_runs_notify_once_until_the_pipeline_delivers_again(org_a, loopback, worker):
    loopback.behave = status(422, body=b'{"error": "no"}')
    destination = make_destination(org_a, loopback.url, batch_size=50)
    source = make_source(org_a, count=50)
    pipeline = make_pipeline(org_a, source, destination, sync_mode="full")
    for _ in range(2):
        run = wait_for_run(run_create(pipeline=pipeline, trigger="api"), timeout=20)
        assert run.state == RunState.FAILED
    assert list(
        Notification.objects.filter(organization=org_a).values_list("event", "subject_id")
    ) == [(Event.RUN_FAILED, Run.objects.filter(pipeline=pipeline).earliest("created_at").pk)]


@pytest.mark.parametrize("mode", ["batch", "single"])
def test_per_record_rejections_fail_exactly_those_records(org_a, loopback, worker, mode):
    loopback.behave = reject_ids({3, 17}, code=207, reason="bad email")
    destination = make_destination(
        org_a, loopback.url, write_mode=mode, batch_size=10, response_format="per_record"
    )
    run = run_create(
        pipeline=make_pipeline(org_a, make_source(org_a, count=50), destination), trigger="api"
    )
    run = wait_for_run(run, timeout=20)
    assert (run.state, run.records_delivered, run.records_failed) == (
        RunState.PARTIALLY_FAILED,
        48,
        2,
    )
    failures = RecordFailure.objects.filter(run=run).order_by("sequence")
    assert [(f.sequence, f.reason, f.http_status) for f in failures] == [
        (3, "Rejected by the destination: bad email 3", 207),
        (17, "Rejected by the destination: bad email 17", 207),
    ]


def test_without_per_record_format_a_rejecting_body_still_delivers_everything(
    org_a, loopback, worker
):
    loopback.behave = reject_ids({3}, code=200)
    destination = make_destination(org_a, loopback.url, batch_size=50)
    run = run_create(
        pipeline=make_pipeline(org_a, make_source(org_a, count=50), destination), trigger="api"
    )
    assert wait_for_run(run, timeout=20).records_delivered == 50


def test_a_413_failure_suggests_a_smaller_batch(org_a, loopback, worker):
    loopback.behave = status(413, body=b'{"error": "too large"}')
    destination = make_destination(org_a, loopback.url, batch_size=50)
    run = run_create(
        pipeline=make_pipeline(org_a, make_source(org_a, count=50), destination), trigger="api"
    )
    run = wait_for_run(run, timeout=20)
    assert run.state == RunState.FAILED
    reason = RecordFailure.objects.filter(run=run).first().reason
    assert "batch_size" in reason
    assert "split_failed_batches" in reason


def test_a_waiting_run_whose_message_was_lost_is_resumed_by_the_sweep(
    org_a, loopback, broker, settings, transactional_db
):
    settings.DELIVERY_RETRY_SCHEDULE = (0.5,)
    settings.RUN_ENQUEUE_GRACE_SECONDS = 1
    loopback.behave = for_seconds(0.3, status(503))
    destination = make_destination(org_a, loopback.url, batch_size=50)
    run = run_create(
        pipeline=make_pipeline(org_a, make_source(org_a, count=50), destination), trigger="api"
    )
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        _until(lambda: _state(run) == RunState.WAITING, timeout=20, what="the run to wait")
    finally:
        worker.stop()
    broker.flush_all()  # the delayed message is lost
    time.sleep(0.5)
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        time.sleep(0.5)
        assert _state(run) == RunState.WAITING  # nothing came to resume it
        _until(
            lambda: _state(run) == RunState.SUCCEEDED,
            timeout=20,
            tick=True,
            what="the sweep to resume the run",
        )
    finally:
        worker.stop()


def test_at_most_the_organization_limit_of_runs_execute_at_once(org_a, loopback, worker, settings):
    settings.DELIVERY_MAX_ACTIVE_RUNS_PER_ORGANIZATION = 1
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def slow(request):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.3)
        with lock:
            state["now"] -= 1
        return ok(request)

    loopback.behave = slow
    source = make_source(org_a, count=50)
    runs = []
    for n in range(2):
        destination = make_destination(org_a, loopback.url, name=f"d{n}", batch_size=10)
        pipeline = make_pipeline(org_a, source, destination, name=f"p{n}", sync_mode="full")
        runs.append(run_create(pipeline=pipeline, trigger="api"))
    reasons = set()

    def note_reasons():
        for run in runs:
            run.refresh_from_db()
            if run.queued_reason:
                reasons.add(run.queued_reason)
        return all(run.finished_at for run in runs)

    _until(note_reasons, timeout=40, what="both runs to finish")
    assert all(run.state == RunState.SUCCEEDED for run in runs)
    assert state["max"] == 1  # two destinations, but one run of the organization at a time
    assert any("organization" in reason for reason in reasons)


def test_single_mode_confirms_progress_within_a_chunk(org_a, loopback, worker, settings):
    settings.DELIVERY_PROGRESS_SECONDS = 0.2

    def slow(request):
        time.sleep(0.01)
        return ok(request)

    loopback.behave = slow
    destination = make_destination(org_a, loopback.url, write_mode="single", max_concurrency=2)
    run = run_create(
        pipeline=make_pipeline(org_a, make_source(org_a, count=200), destination), trigger="api"
    )
    assert run.chunks.count() in (0, 1)

    def confirmed_mid_chunk():
        chunk = RunChunk.objects.filter(run=run).first()
        return (
            chunk is not None
            and chunk.state == ChunkState.PENDING
            and chunk.confirmed_through is not None
            and Run.objects.get(pk=run.pk).records_delivered > 0
        )

    _until(confirmed_mid_chunk, timeout=20, what="progress confirmed inside the chunk")
    run = wait_for_run(run, timeout=30)
    assert (run.state, run.records_delivered) == (RunState.SUCCEEDED, 200)
    assert len(loopback.requests) == 200


@pytest.mark.reliability
def test_runs_stuck_on_a_dripping_destination_do_not_delay_another_organization(
    org_a, org_b, loopback, broker, settings
):
    settings.DELIVERY_RETRY_SCHEDULE = (2,) * 10
    settings.DELIVERY_QUICK_RETRY_SECONDS = 0
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=4)
    worker.start()
    try:
        with Sink() as fast:
            destination_b = make_destination(org_b, fast.url, batch_size=100)
            source_b = make_source(org_b, count=100)
            pipeline_b = make_pipeline(org_b, source_b, destination_b, sync_mode="full")

            def timed_run() -> float:
                started = time.monotonic()
                run = wait_for_run(run_create(pipeline=pipeline_b, trigger="api"), timeout=60)
                assert (run.state, run.records_delivered) == (RunState.SUCCEEDED, 100)
                return time.monotonic() - started

            alone = timed_run()
            # A status line, then a byte a second of a 60-byte body: 60 s per request
            # without the whole-request deadline (1 s here).
            loopback.behave = drip(interval=1.0, body=b"x" * 60)
            dripping = make_destination(org_a, loopback.url, name="Drip", timeout_seconds=1)
            source_a = make_source(org_a, count=50)
            stuck = [
                run_create(
                    pipeline=make_pipeline(
                        org_a, source_a, dripping, name=f"drip {n}", sync_mode="full"
                    ),
                    trigger="api",
                )
                for n in range(4)
            ]
            _until(lambda: len(loopback.requests) >= 4, timeout=20, what="4 dripping requests")
            beside = timed_run()
            assert beside < alone * 1.5 + 2.5, (alone, beside)
            assert all(_state(run) in (RunState.WAITING, RunState.RUNNING) for run in stuck)
    finally:
        worker.stop()


def _most_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_the_rate_limit_holds_across_runs_to_one_destination(org_a, loopback, broker):
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=4)
    worker.start()
    try:
        destination = make_destination(
            org_a, loopback.url, write_mode="single", rate_limit_per_second=20
        )
        source = make_source(org_a, count=50)
        runs = [
            run_create(
                pipeline=make_pipeline(org_a, source, destination, name=f"p{n}", sync_mode="full"),
                trigger="api",
            )
            for n in range(2)
        ]
        for run in runs:
            assert wait_for_run(run, timeout=60).records_delivered == 50
    finally:
        worker.stop()
    times = [request.at for request in loopback.requests]
    assert len(times) == 100
    assert _most_in_any_second(times) <= 20
    assert max(times) - min(times) >= 4.0  # 100 requests at 20/s
