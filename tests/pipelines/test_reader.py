"""Rows read ahead by a thread (PostgreSQL): the same rows as the in-line read, and a reader
closed half-way stops its thread and gives its connection back."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from pipelines.models import Run, RunChunk
from pipelines.reader import RowReader, reads_ahead
from pipelines.records import chunk_texts
from pipelines.services import run_create
from tests.pipelines.conftest import make_destination, make_pipeline, make_source

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def planned(org_a, broker, sink):
    if not reads_ahead():
        pytest.skip("rows are read ahead on PostgreSQL only")
    destination = make_destination(org_a, sink.url, batch_size=50)
    run = run_create(pipeline=make_pipeline(org_a, make_source(org_a), destination), trigger="api")
    run = Run.objects.select_related("pipeline").get(pk=run.pk)
    chunk = RunChunk(run=run, sequence_from=0, sequence_to=run.sequence_to, confirmed_through=10)
    return run, chunk


def _reader_threads() -> int:
    return sum(t.name == "osmos-row-reader" for t in threading.enumerate())


def test_the_reader_yields_exactly_the_rows_read_in_line(planned):
    run, chunk = planned
    reader = RowReader(run, chunk)
    try:
        ahead = list(reader)
    finally:
        reader.close()

    assert ahead == list(chunk_texts(run, chunk))
    assert [sequence for sequence, _ in ahead] == list(range(11, 51))  # after confirmed_through
    assert _reader_threads() == 0


def test_a_reader_closed_half_way_stops_and_closes_its_connection(planned):
    run, chunk = planned
    before = _backends()
    reader = RowReader(run, chunk)
    first = next(iter(reader))
    reader.close()

    assert first[0] == 11
    assert _reader_threads() == 0
    assert _eventually(lambda: _backends() <= before)  # the thread's connection is closed


def _eventually(check, seconds: float = 3.0) -> bool:
    # A closed connection's backend leaves pg_stat_activity a moment after the client.
    ends = time.monotonic() + seconds
    while not check():
        if time.monotonic() > ends:
            return False
        time.sleep(0.05)
    return True


def _backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]
