"""Single mode (one record per request, sent by libcurl from the run's thread): the quick
retry, a cancel in the middle of a chunk, a 429's pause, timeouts and refused connections,
against a real worker and a real loopback sink."""

from __future__ import annotations

import threading
import time

import pytest

from pipelines.models import RecordFailure, RequestLog, RunState
from pipelines.senders import CANCELLED_REASON
from pipelines.services import run_cancel, run_create
from tests.support.delivery import make_destination, make_pipeline, make_source, wait_for_run
from tests.support.sink import Answer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True, params=["threads", "curl"])
def single_client(request, settings):
    """Both single-mode senders: the threaded one and the libcurl default."""
    settings.DELIVERY_SINGLE_CLIENT = request.param
    return request.param


def _single(org, sink, count=50, **options):
    options = {"write_mode": "single", "max_concurrency": 4} | options
    destination = make_destination(org, sink.url, **options)
    return make_pipeline(org, make_source(org, count=count), destination)


def test_a_blip_is_retried_once_quickly_and_logged_twice(org_a, sink, worker, settings):
    settings.DELIVERY_QUICK_RETRY_SECONDS = 0.1
    seen: set[int] = set()
    lock = threading.Lock()

    def blip_on_7(request):
        with lock:
            first = request.json()["id"] == 7 and 7 not in seen
            seen.add(request.json()["id"])
        return Answer(503, b"busy") if first else Answer(200)

    sink.behave = blip_on_7
    run = wait_for_run(run_create(pipeline=_single(org_a, sink), trigger="api"))
    assert (run.state, run.records_delivered, run.requests_made) == (RunState.SUCCEEDED, 50, 51)
    log = list(RequestLog.objects.filter(run=run, sequence_from=7).values_list("status", "error"))
    assert [status for status, _ in log] == [503, 200]
    assert "503" in log[0][1]
    keys = [r.header("Idempotency-Key") for r in sink.requests if r.json()["id"] == 7]
    assert len(keys) == 2
    assert keys[0] == keys[1]


def test_a_cancel_mid_chunk_sends_no_more_and_fails_the_unsent(org_a, sink, worker):
    started = threading.Event()

    def slow(request):
        started.set()
        time.sleep(0.05)
        return Answer(200)

    sink.behave = slow
    run = run_create(pipeline=_single(org_a, sink, count=400, max_concurrency=2), trigger="api")
    assert started.wait(10)
    time.sleep(0.3)
    run_cancel(run=run)
    run = wait_for_run(run, timeout=30)
    sent_at_end = len(sink.requests)
    time.sleep(0.3)
    assert run.state == RunState.CANCELLED
    assert run.records_delivered + run.records_failed == run.records_total == 400
    assert 0 < run.records_delivered < 400
    # Requests already in flight may end after the cancel (at most one per connection).
    assert run.records_delivered <= len(sink.requests) <= run.records_delivered + 2
    assert len(sink.requests) == sent_at_end  # nothing sent after the run ended
    reasons = set(RecordFailure.objects.filter(run=run).values_list("reason", flat=True))
    assert reasons == {CANCELLED_REASON}


def test_a_429_pauses_every_request_for_its_retry_after(org_a, sink, worker):
    times: list[float] = []
    lock = threading.Lock()

    def limited(request):
        with lock:
            times.append(time.monotonic())
            first = len(times) == 1
        return Answer(429, b"slow down", (("Retry-After", "1"),)) if first else Answer(200)

    sink.behave = limited
    run = wait_for_run(run_create(pipeline=_single(org_a, sink), trigger="api"))
    assert (run.state, run.records_delivered) == (RunState.SUCCEEDED, 50)
    # Requests already in flight when the 429 came may land; none is started after it
    # before the pause is over.
    later = [t for t in times[1:] if t - times[0] > 0.2]
    assert later
    assert min(later) - times[0] >= 0.95


def test_a_destination_slower_than_its_timeout_fails_the_records_after_the_schedule(
    org_a, sink, worker
):
    def slow(request):
        time.sleep(1.5)
        return Answer(200, b"")

    sink.behave = slow
    pipeline = _single(org_a, sink, max_concurrency=2, timeout_seconds=1)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"), timeout=40)
    assert (run.state, run.records_failed) == (RunState.FAILED, 50)
    reason = RecordFailure.objects.filter(run=run).first().reason
    assert "did not complete the request within 1 s" in reason


def test_a_refused_connection_fails_the_records_with_the_reason(org_a, sink, worker):
    pipeline = _single(org_a, sink)
    sink.close()  # connections are refused from now on
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"), timeout=30)
    assert (run.state, run.records_failed) == (RunState.FAILED, 50)
    reason = RecordFailure.objects.filter(run=run).first().reason
    assert "Could not connect to 127.0.0.1" in reason
