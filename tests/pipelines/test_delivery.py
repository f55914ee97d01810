"""The delivery engine end to end: records ingested, a real worker, a real sink on loopback."""

from __future__ import annotations

import json
import math
import time

import pytest

from connectors.services import connector_create
from ingest.services import source_save
from pipelines.models import RecordFailure, RequestLog, RunChunk, RunState
from pipelines.services import run_create
from tests.support.delivery import (
    MAPPING,
    SECRET,
    SOURCE_SCHEMA,
    ingest,
    make_destination,
    make_pipeline,
    make_records,
    make_source,
    wait_for_run,
)
from tests.support.sink import Answer, fail_ids

pytestmark = pytest.mark.django_db(transaction=True)


def _pipeline(org, sink, count=50, **destination_options):
    source = make_source(org, count=count)
    destination = make_destination(org, sink.url, **destination_options)
    return make_pipeline(org, source, destination)


def _expected(ids):
    return [{"id": i, "email": f"user{i}@example.com", "total": i * 1.5} for i in ids]


def test_batch_run_delivers_every_record_as_mapped_arrays_of_batch_size(org_a, sink, worker):
    pipeline = _pipeline(org_a, sink, count=55, batch_size=20)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert run.state == RunState.SUCCEEDED
    assert (run.records_total, run.records_delivered, run.records_failed) == (55, 55, 0)
    assert run.requests_made == 3
    assert [len(r.json()) for r in sink.requests] == [20, 20, 15]
    assert sink.records() == _expected(range(1, 56))
    assert run.started_at is not None
    assert run.finished_at >= run.started_at


def test_every_request_carries_the_product_headers_and_the_customer_headers(org_a, sink, worker):
    pipeline = _pipeline(org_a, sink, batch_size=50)
    wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    (request,) = sink.requests
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.header("Content-Type") == "application/json"
    assert request.header("User-Agent").startswith("osmos/")
    assert request.header("Authorization") == SECRET
    chunk = RunChunk.objects.get()
    assert request.header("Idempotency-Key") == chunk.idempotency_key
    assert int(request.header("Content-Length")) == len(request.body)


def test_request_log_never_stores_header_values(org_a, sink, worker):
    pipeline = _pipeline(org_a, sink, batch_size=50)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    log = RequestLog.objects.get(run=run)
    assert (log.status, log.attempt, log.record_count) == (200, 1, 50)
    assert (log.sequence_from, log.sequence_to) == (1, 50)
    assert SECRET not in str(list(RequestLog.objects.values()))


def test_single_mode_sends_one_object_per_record_over_few_connections(org_a, sink, worker):
    pipeline = _pipeline(org_a, sink, count=60, write_mode="single", max_concurrency=4)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert run.state == RunState.SUCCEEDED
    assert run.requests_made == 60
    bodies = [r.json() for r in sink.requests]
    assert all(isinstance(body, dict) for body in bodies)
    assert sorted(bodies, key=lambda r: r["id"]) == _expected(range(1, 61))
    keys = {r.header("Idempotency-Key") for r in sink.requests}
    assert len(keys) == 60
    # keep-alive: a handful of connections (one per sending thread), not one per record
    assert len({r.client_port for r in sink.requests}) <= 4


@pytest.mark.parametrize("client", ["curl", "threads"])
def test_single_mode_keeps_its_connections_beyond_ten_in_flight(
    org_a, sink, worker, settings, caplog, client
):
    """12 requests in flight reuse at most 12 kept-alive connections, with either sender
    (urllib3's default pool holds 10; libcurl's multi handle keeps its own cache)."""
    settings.DELIVERY_SINGLE_CLIENT = client

    def slow(request):
        time.sleep(0.05)
        return Answer(200, b"{}")

    sink.behave = slow
    pipeline = _pipeline(org_a, sink, count=120, write_mode="single", max_concurrency=12)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert run.records_delivered == 120
    assert len({r.client_port for r in sink.requests}) <= 12
    # urllib3 closes (and later reopens) connections that do not fit in its pool
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_single_mode_never_exceeds_the_configured_concurrency(org_a, sink, worker, settings):
    import threading

    state = {"now": 0, "max": 0}
    lock = threading.Lock()

    def slow(request):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return Answer(200, b"{}")

    sink.behave = slow
    pipeline = _pipeline(org_a, sink, count=50, write_mode="single", max_concurrency=3)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert run.records_delivered == 50
    assert 1 < state["max"] <= 3


def test_bisection_isolates_exactly_the_bad_records_within_the_request_bound(org_a, sink, worker):
    bad = {7, 33}
    sink.behave = fail_ids(bad)
    pipeline = _pipeline(org_a, sink, count=64, batch_size=64, split_failed_batches=True)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert run.state == RunState.PARTIALLY_FAILED
    assert (run.records_delivered, run.records_failed) == (62, 2)
    failures = list(RecordFailure.objects.filter(run=run).order_by("sequence"))
    assert [f.sequence for f in failures] == [7, 33]
    assert failures[0].http_status == 422
    assert failures[0].response_excerpt == '{"error": "bad record"}'
    assert failures[0].record == {"id": 7, "email": "user7@example.com", "total": 10.5}
    assert run.requests_made <= 1 + 2 * len(bad) * math.ceil(math.log2(64))
    assert len(sink.requests) == run.requests_made
    accepted = [
        record["id"]
        for request in sink.requests
        if not bad & {record["id"] for record in request.json()}
        for record in request.json()
    ]
    assert sorted(accepted) == sorted(set(range(1, 65)) - bad)


def test_sub_batches_carry_their_own_stable_idempotency_keys(org_a, sink, worker):
    sink.behave = fail_ids({3})
    pipeline = _pipeline(org_a, sink, count=50, batch_size=8, split_failed_batches=True)
    wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    by_key: dict[str, set] = {}
    for request in sink.requests:
        ids = tuple(record["id"] for record in request.json())
        by_key.setdefault(request.header("Idempotency-Key"), set()).add(ids)
    assert all(len(bodies) == 1 for bodies in by_key.values())


def test_without_splitting_a_refused_batch_fails_all_its_records(org_a, sink, worker):
    sink.behave = fail_ids({5}, code=400)
    pipeline = _pipeline(org_a, sink, count=50, batch_size=10)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert run.state == RunState.PARTIALLY_FAILED
    assert (run.records_delivered, run.records_failed, run.requests_made) == (40, 10, 5)
    failed = RecordFailure.objects.filter(run=run)
    assert sorted(failed.values_list("sequence", flat=True)) == list(range(1, 11))
    assert set(failed.values_list("http_status", flat=True)) == {400}


def test_503_then_success_is_retried_with_the_same_idempotency_key(org_a, sink, worker):
    calls = []

    def flaky(request):
        calls.append(request)
        return Answer(503, b"busy") if len(calls) <= 2 else Answer(200, b"{}")

    sink.behave = flaky
    pipeline = _pipeline(org_a, sink, batch_size=50)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert run.state == RunState.SUCCEEDED
    assert run.requests_made == 3
    assert len({r.header("Idempotency-Key") for r in sink.requests}) == 1
    assert len({r.body for r in sink.requests}) == 1
    logs = list(RequestLog.objects.filter(run=run).values_list("attempt", "status"))
    assert logs == [(1, 503), (2, 503), (3, 200)]


def test_429_waits_at_least_the_retry_after_it_was_given(org_a, sink, worker):
    times = []

    def limited(request):
        times.append(time.monotonic())
        if len(times) == 1:
            return Answer(429, b"slow down", (("Retry-After", "1"),))
        return Answer(200, b"")

    sink.behave = limited
    pipeline = _pipeline(org_a, sink, batch_size=50)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert run.state == RunState.SUCCEEDED
    assert times[1] - times[0] >= 0.95


def test_records_fail_only_when_the_retry_schedule_is_exhausted(org_a, sink, worker):
    sink.behave = lambda request: Answer(500, b"boom")
    pipeline = _pipeline(org_a, sink, count=50, batch_size=25, split_failed_batches=True)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert run.state == RunState.FAILED
    # The first chunk: 1 + 2 scheduled attempts, no split. The second chunk then fails at its
    # first failure: the destination has been failing for the whole schedule already.
    assert (run.records_failed, run.requests_made) == (50, 4)
    failures = RecordFailure.objects.filter(run=run).order_by("sequence")
    assert failures[0].http_status == 500
    assert "The destination answered 500" in failures[0].reason
    assert "Gave up after 3 attempts" in failures[0].reason
    assert "Gave up after 1 attempt over" in failures[49].reason


def test_timeouts_are_retried_then_fail_the_records(org_a, sink, worker):
    def slow(request):
        time.sleep(1.5)
        return Answer(200, b"")

    sink.behave = slow
    pipeline = _pipeline(org_a, sink, batch_size=50, timeout_seconds=1)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"), timeout=30)
    assert run.state == RunState.FAILED
    assert run.requests_made == 3
    assert (
        "did not complete the request within 1 s"
        in RecordFailure.objects.filter(run=run).first().reason
    )


def test_connection_refused_fails_the_records_with_the_reason(org_a, sink, worker):
    pipeline = _pipeline(org_a, sink, batch_size=50)
    sink.close()
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert (run.state, run.records_failed, run.requests_made) == (RunState.FAILED, 50, 3)
    reason = RecordFailure.objects.filter(run=run).first().reason
    assert "Could not connect to 127.0.0.1" in reason


def test_redirect_is_not_followed_and_fails_the_batch(org_a, sink, worker):
    sink.behave = lambda request: Answer(302, b"", (("Location", "http://127.0.0.1:1/elsewhere"),))
    pipeline = _pipeline(org_a, sink, batch_size=50)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert (run.state, run.requests_made) == (RunState.FAILED, 1)
    failure = RecordFailure.objects.filter(run=run).first()
    assert failure.http_status == 302
    assert "redirects are not followed" in failure.reason
    assert len(sink.requests) == 1


def test_records_invalid_for_the_destination_fail_and_are_not_sent(org_a, sink, worker):
    source = make_source(org_a, count=50)
    destination = make_destination(org_a, sink.url, batch_size=100)
    # "note" is a nullable string fed into the required "email": refused at save time, so
    # build a pipeline whose mapping is valid but whose data breaks the destination: a json
    # destination field is not involved, so we make it with a mapping of a missing field.
    pipeline = make_pipeline(org_a, source, destination)
    pipeline.mapping = {**MAPPING, "email": "note"}  # bypasses save-time checks on purpose
    pipeline.save()
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert (run.state, run.records_failed, run.requests_made) == (RunState.FAILED, 50, 0)
    assert sink.requests == []
    failure = RecordFailure.objects.filter(run=run).first()
    assert failure.http_status is None
    assert "Does not match the destination schema" in failure.reason
    assert "email" in failure.reason


def test_incremental_runs_send_only_records_that_arrived_since_the_last_run(org_a, sink, worker):
    source = make_source(org_a, count=50)
    pipeline = make_pipeline(org_a, source, make_destination(org_a, sink.url, batch_size=100))
    first = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    ingest(source, make_records(5, start=51))
    second = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    third = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert (first.records_total, second.records_total, third.records_total) == (50, 5, 0)
    assert third.state == RunState.SUCCEEDED
    assert [r["id"] for r in sink.records()] == list(range(1, 56))


def test_records_arriving_after_a_run_was_created_go_to_the_next_run(org_a, sink, broker):
    source = make_source(org_a, count=50)
    pipeline = make_pipeline(org_a, source, make_destination(org_a, sink.url, batch_size=100))
    run = run_create(pipeline=pipeline, trigger="api")  # no worker yet: the run waits
    ingest(source, make_records(3, start=51))
    import dramatiq

    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    try:
        run = wait_for_run(run)
        later = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    finally:
        worker.stop()
    assert (run.sequence_from, run.sequence_to, run.records_total) == (0, 50, 50)
    assert (later.sequence_from, later.sequence_to, later.records_total) == (50, 53, 3)


def test_full_mode_sends_all_records_on_every_run(org_a, sink, worker):
    source = make_source(org_a, count=50)
    destination = make_destination(org_a, sink.url, batch_size=100)
    pipeline = make_pipeline(org_a, source, destination, sync_mode="full")
    wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    second = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert second.records_total == 50
    assert [r["id"] for r in sink.records()] == list(range(1, 51)) * 2


def test_put_and_patch_methods_are_used_as_configured(org_a, sink, worker):
    pipeline = _pipeline(org_a, sink, batch_size=50, method="PATCH")
    wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert [r.method for r in sink.requests] == ["PATCH"]


def test_records_posted_to_the_ingest_url_reach_the_sink_exactly(org_a, sink, worker, client):
    issued = connector_create(
        organization=org_a, name="Webhook", direction="source", fields=SOURCE_SCHEMA
    )
    response = client.post(
        f"/ingest/{issued.ingest_token}/",
        data=json.dumps(make_records(50)),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    source_save(connector=issued.connector)
    destination = make_destination(org_a, sink.url, batch_size=50)
    pipeline = make_pipeline(org_a, issued.connector, destination)
    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))
    assert (run.state, run.records_delivered) == (RunState.SUCCEEDED, 50)
    (request,) = sink.requests
    assert request.body == json.dumps(_expected(range(1, 51)), separators=(",", ":")).encode()


def test_statically_safe_pipeline_sends_the_same_bytes_as_the_validating_path(org_a, sink, worker):
    from connectors.schema import compile_schema
    from pipelines.chunk_reader import chunk_rows
    from pipelines.models import RunChunk
    from pipelines.records import FailureSpool, validated_records

    source = make_source(org_a, count=50)
    odd = [
        {"id": 51, "email": 'é \u2028 "quoted" \\ \n\t\u0001', "amount": 1.10, "note": "x"},
        {"id": 52, "email": "b@example.com", "amount": 12345678901234567890, "note": None},
        {"id": 53, "email": "c@example.com", "amount": 1e-7},
        {"id": 54, "email": "d@example.com", "amount": -0.0, "note": "🙂"},
    ]
    ingest(source, odd)
    destination = make_destination(org_a, sink.url, batch_size=20)
    pipeline = make_pipeline(org_a, source, destination)

    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))

    assert run.state == RunState.SUCCEEDED
    schema = compile_schema(fields=destination.field_specs())
    expected = []
    for chunk in RunChunk.objects.filter(run=run).order_by("index"):
        records = validated_records(
            chunk_rows(run, chunk),
            mapping=tuple(run.mapping.items()),
            schema=schema,
            failures=FailureSpool(),
        )
        expected.append(b"[" + b",".join(raw for _, raw in records) + b"]")
    assert [request.body for request in sink.requests] == expected
    assert sink.records()[-4:] == [
        {"id": 51, "email": odd[0]["email"], "total": 1.1},
        {"id": 52, "email": "b@example.com", "total": 12345678901234567890},
        {"id": 53, "email": "c@example.com", "total": 1e-7},
        {"id": 54, "email": "d@example.com", "total": -0.0},
    ]
