"""A pipeline that copies every source field to its namesake sends each stored record as
stored: same JSON values as the mapping path would send, without decoding a record."""

from __future__ import annotations

import json

import pytest

from connectors.schema import FieldSpec, compile_schema
from connectors.services import connector_create
from pipelines.models import RunState
from pipelines.records import FailureSpool, record_preparer
from pipelines.services import run_create
from tests.support.delivery import (
    SOURCE_SCHEMA,
    ingest,
    make_pipeline,
    make_records,
    make_source,
    wait_for_run,
)

ODD = [
    {"id": 51, "email": 'é \u2028 "quoted" \\ \n\t\u0001', "amount": 1.10, "note": "x"},
    {"id": 52, "email": "b@example.com", "amount": 12345678901234567890, "note": None},
    {"id": 53, "email": "c@example.com", "amount": 1e-7},  # "note" missing: stays missing
    {"id": 54, "email": "d@example.com", "amount": -0.0, "note": "🙂"},
]
FIELDS = [FieldSpec(f["name"], f["type"], f["nullable"]) for f in SOURCE_SCHEMA]


def mirror_destination(organization, url: str, **options):
    return connector_create(
        organization=organization,
        name="Mirror",
        direction="destination",
        fields=SOURCE_SCHEMA,
        destination={"url": url, "write_mode": "batch", "batch_size": 20, **options},
    ).connector


def identity_run_with_chunk(organization, *, extra=(), **chunk_fields):
    """A run of an identity pipeline over 50 records (then ``extra``) and one chunk of it
    saved with ``chunk_fields``: ``(run, chunk, destination)``."""
    from pipelines.models import RunChunk

    source = make_source(organization, count=50)
    if extra:
        ingest(source, list(extra))
    destination = mirror_destination(organization, "http://127.0.0.1:9/")
    run = run_create(
        pipeline=make_pipeline(organization, source, destination, mapping=None), trigger="api"
    )
    chunk = RunChunk.objects.create(
        organization_id=organization.id, run=run, index=0, idempotency_key="k", **chunk_fields
    )
    return run, chunk, destination


@pytest.mark.parametrize("write_mode", ["batch", "single"])
def test_an_identity_pipeline_delivers_every_stored_value_exactly(org_a, sink, worker, write_mode):
    source = make_source(org_a, count=50)
    ingest(source, ODD)
    destination = mirror_destination(org_a, sink.url, write_mode=write_mode)
    pipeline = make_pipeline(org_a, source, destination, mapping=None)
    assert pipeline.mapping == {name: name for name in ("id", "email", "amount", "note")}

    run = wait_for_run(run_create(pipeline=pipeline, trigger="api"))

    assert (run.state, run.records_delivered, run.records_failed) == (RunState.SUCCEEDED, 54, 0)
    received = sorted(sink.records(), key=lambda record: record["id"])
    assert received == make_records(50) + ODD
    assert "note" not in received[52]


def test_only_a_mapping_onto_namesakes_of_every_source_field_skips_decoding():
    schema = compile_schema(fields=FIELDS)
    stored = [(7, '{"id": 7, "note": null, "email": "a@b.example", "amount": 1.0}')]
    identity = {name: name for name, _, _ in FIELDS}
    prepare = record_preparer(
        mapping=identity, source_fields=FIELDS, destination_fields=FIELDS, schema=schema
    )
    assert list(prepare(iter(stored), FailureSpool())) == [(7, stored[0][1].encode())]

    partial = {name: name for name in ("id", "email", "amount")}
    nullable_note = [*FIELDS[:3], FieldSpec("note", "string", True)]
    prepare = record_preparer(
        mapping=partial, source_fields=FIELDS, destination_fields=nullable_note, schema=schema
    )
    ((_sequence, body),) = prepare(iter(stored), FailureSpool())
    assert json.loads(body) == {"id": 7, "email": "a@b.example", "amount": 1.0}


def test_a_chunk_read_in_blocks_gives_the_stored_texts_as_utf8(org_a, settings, monkeypatch):
    from django.db import transaction

    from pipelines import chunk_reader
    from pipelines.models import RunChunk

    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    monkeypatch.setattr(chunk_reader, "BLOCK_ROWS", 7)
    source = make_source(org_a, count=50)
    ingest(source, ODD)
    destination = mirror_destination(org_a, "http://127.0.0.1:9/")
    pipeline = make_pipeline(org_a, source, destination, mapping=None)
    run = run_create(pipeline=pipeline, trigger="api")
    chunk = RunChunk(run=run, index=0, sequence_from=3, sequence_to=54, record_count=51)
    chunk.confirmed_through = 5
    with transaction.atomic():
        texts = list(chunk_reader.chunk_texts(run, chunk))
        blocks = list(chunk_reader.chunk_blocks(run, chunk))
    assert [len(sequences) for sequences, _ in blocks] == [7] * 7
    assert [s for sequences, _ in blocks for s in sequences] == list(range(6, 55))
    assert [raw for _, raws in blocks for raw in raws] == [text.encode() for _, text in texts]
    assert [json.loads(raw) for raw in blocks[-1][1][-4:]] == ODD


def test_a_chunk_computed_ahead_gives_the_blocks_read_in_turn(
    org_a, settings, monkeypatch, transactional_db
):
    from django.db import connection, transaction

    from pipelines import chunk_reader

    if connection.vendor != "postgresql":
        pytest.skip("computed ahead on PostgreSQL only")
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    monkeypatch.setattr(chunk_reader, "BLOCK_ROWS", 7)
    run, chunk, _ = identity_run_with_chunk(
        org_a, extra=ODD, sequence_from=3, sequence_to=54, record_count=51, confirmed_through=5
    )
    held = chunk_reader.HeldChunk(run, chunk)
    with transaction.atomic():
        in_turn = list(chunk_reader.chunk_blocks(run, chunk))
    assert held.matches(chunk)
    assert list(held.blocks()) == in_turn
    assert [s for sequences, _ in in_turn for s in sequences] == list(range(6, 55))

    moved = chunk_reader.HeldChunk(run, chunk)
    chunk.confirmed_through = 9  # the chunk moved on meanwhile: not these rows
    assert not moved.matches(chunk)
    moved.close()


def test_a_run_inside_a_callers_transaction_sends_every_record_of_every_chunk(org_a, db, sink):
    """Another connection cannot see rows the caller has not committed: nothing is computed
    ahead there (it would have read empty chunks: 20 of 50 records delivered, the rest lost
    to the accounting check)."""
    from pipelines import delivery

    source = make_source(org_a, count=50)
    destination = mirror_destination(org_a, sink.url)
    run = run_create(
        pipeline=make_pipeline(org_a, source, destination, mapping=None), trigger="api"
    )
    delivery.run_execute(run_id=run.id)
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    assert run.records_delivered == 50
    sent = [record["id"] for request in sink.requests for record in json.loads(request.body)]
    assert sorted(sent) == list(range(1, 51))


def test_rows_computed_ahead_that_are_not_the_chunks_records_are_never_sent(
    org_a, settings, transactional_db
):
    """A body built ahead is used only when it holds exactly the chunk's unsent records;
    otherwise the chunk is read again in turn."""
    from django.db import connection

    from pipelines import chunk_reader
    from pipelines.retries import Target
    from pipelines.senders import BatchSender

    if connection.vendor != "postgresql":
        pytest.skip("computed ahead on PostgreSQL only")
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    # Records 3..50 in the chunk, 3 and 4 confirmed: 46 unsent (5..50).
    run, chunk, destination = identity_run_with_chunk(
        org_a, sequence_from=3, sequence_to=50, record_count=48, confirmed_through=4, delivered=2
    )
    sender = BatchSender.__new__(BatchSender)
    sender.target = Target.of(destination.destination)

    sender._ahead = chunk_reader.HeldChunk(run, chunk)
    body = sender._read_ahead_body(chunk)
    assert body is not None
    assert len(body) == 46
    body.close()

    chunk.delivered = 1  # the accounting says 47 are unsent: the 46 rows are not them
    sender._ahead = chunk_reader.HeldChunk(run, chunk)
    assert sender._read_ahead_body(chunk) is None


def test_a_chunk_computed_ahead_too_slowly_is_given_up_without_waiting_for_it(
    org_a, settings, monkeypatch, transactional_db
):
    """A database that does not answer the read-ahead holds the run no longer than
    HELD_CHUNK_WAIT_SECONDS; the statement's own thread closes its connection when it ends."""
    import time

    import psycopg
    from django.db import connection

    from pipelines import chunk_reader

    if connection.vendor != "postgresql":
        pytest.skip("computed ahead on PostgreSQL only")
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    monkeypatch.setattr(chunk_reader, "HELD_CHUNK_WAIT_SECONDS", 0.5)
    run, chunk, _ = identity_run_with_chunk(org_a, sequence_from=1, sequence_to=50, record_count=50)
    with psycopg.connect(**connection.get_connection_params()) as blocker:
        blocker.execute("LOCK TABLE ingest_record IN ACCESS EXCLUSIVE MODE")
        held = chunk_reader.HeldChunk(run, chunk)
        began = time.monotonic()
        assert held.blocks() is None
        assert time.monotonic() - began < 5
        held.close()  # does not wait either
        assert held._thread.is_alive()  # still waiting for the lock
        blocker.rollback()
    held._thread.join(10)
    assert not held._thread.is_alive()
    assert held._connection is None  # closed by its own thread
