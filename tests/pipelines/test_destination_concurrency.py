"""Concurrency is bounded per destination, not per run: two runs to one API share it (the
destination gate of ``osmos.outbound``)."""

from __future__ import annotations

import threading
import time

from pipelines.models import Run, RunState
from pipelines.services import run_create
from tests.support.delivery import make_destination, make_pipeline, make_source, wait_for_run
from tests.support.sink import Answer


def test_two_single_mode_runs_to_one_destination_never_exceed_its_concurrency(
    org_a, sink, worker, settings
):
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
    source = make_source(org_a, count=60)
    destination = make_destination(org_a, sink.url, write_mode="single", max_concurrency=2)
    pipelines = [
        make_pipeline(org_a, source, destination, name=name, sync_mode="full")
        for name in ("first", "second")
    ]
    runs = [run_create(pipeline=pipeline, trigger="api") for pipeline in pipelines]
    runs = [wait_for_run(run, timeout=60) for run in runs]

    assert [(run.state, run.records_delivered) for run in runs] == [
        (RunState.SUCCEEDED, 60),
        (RunState.SUCCEEDED, 60),
    ]
    assert len(sink.requests) == 120
    assert 1 < state["max"] <= 2
    # Waiting for the destination is not a crash: nothing was counted as a resume.
    assert [run.resumes for run in Run.objects.filter(pk__in=[r.pk for r in runs])] == [0, 0]
