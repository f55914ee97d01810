"""Planning a run's chunks: the ends of a range holding every sequence are computed from its
count; any other selection (records purged, a retry run's subset) is numbered by the
database. Both give the same chunks."""

from __future__ import annotations

import pytest

from ingest.models import Record
from pipelines.plan import _chunk_ends, _numbered_chunk_ends
from pipelines.services import run_create
from tests.support.delivery import make_destination, make_pipeline, make_source


@pytest.fixture
def planned(org_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    source = make_source(org_a, count=60)
    destination = make_destination(org_a, "http://127.0.0.1:9/")
    pipeline = make_pipeline(org_a, source, destination)
    return source, run_create(pipeline=pipeline, trigger="api")


@pytest.mark.parametrize("size", [1, 7, 20, 53, 60, 1000])
@pytest.mark.parametrize(("start", "end"), [(0, 60), (5, 60), (0, 0), (13, 47)])
@pytest.mark.parametrize("purged", [(), (1,), (6, 7, 8, 30), (60,)])
def test_the_chunk_ends_are_those_of_the_numbered_rows(planned, size, start, end, purged):
    source, run = planned
    Record.objects.filter(connector=source, sequence__in=purged).delete()
    run.sequence_from, run.sequence_to = start, end

    ends, total = _chunk_ends(run, size)

    assert (ends, total) == _numbered_chunk_ends(run, size)
    kept = [s for s in range(start + 1, end + 1) if s not in purged]
    assert total == len(kept)
    assert ends == kept[size - 1 :: size]
