"""A chunk's rows are read through a server-side cursor (PostgreSQL); the engine closes it
when it stops reading, never the garbage collector.

Left to the collector, the cursor was closed whenever a collection happened to run: often in
the middle of the next statement on the same connection (a gate call, the next chunk's
``DECLARE``), whose thread holds psycopg's connection lock, which the close then waits for:
the run's thread deadlocked (the libcurl single-mode sender through a flapping destination:
an error's traceback kept the sender's frames, and with them the rows, in a cycle). So these
tests run the engine with the collector off and every frame of its kept alive, as that
traceback did, and look for cursors left open.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from pipelines import delivery
from pipelines.models import RunState
from pipelines.services import run_create
from tests.support.factories import build_world
from tests.support.sink import Answer, Sink

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not django_settings.DATABASE_IS_POSTGRES, reason="server-side cursors: PostgreSQL"
    ),
]


@pytest.fixture
def no_collector():
    """Only reference counting frees objects meanwhile (what a cycle keeps stays)."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.fixture
def frames_kept():
    """Every frame of the delivery engine in this thread stays alive (with its locals)."""
    engine = str(Path(delivery.__file__).parent)
    kept = []

    def keep(frame, event, _arg):
        if event == "call" and frame.f_code.co_filename.startswith(engine):
            kept.append(frame)

    sys.setprofile(keep)
    yield kept
    sys.setprofile(None)


def _open_cursors() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_cursors")
        return [name for (name,) in cursor.fetchall()]


def _refuses_record_7(request):
    body = json.loads(request.body)
    records = body if isinstance(body, list) else [body]
    if any(record["id"] == 7 for record in records):
        return Answer(503, b'{"error": "maintenance"}')
    return Answer(200, b'{"ok": true}')


@pytest.mark.parametrize(
    ("write_mode", "client"), [("single", "curl"), ("single", "threads"), ("batch", "curl")]
)
def test_a_chunk_that_waits_leaves_no_cursor_open(
    org_a, member, settings, no_collector, frames_kept, write_mode, client
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DELIVERY_SINGLE_CLIENT = client
    settings.DELIVERY_QUICK_RETRY_SECONDS = 0
    with Sink(_refuses_record_7) as sink:
        world = build_world(org_a, member_user=member, sink_url=sink.url)
        destination = world.destination.destination
        destination.write_mode = write_mode
        destination.batch_size = 5
        destination.save()
        run = run_create(pipeline=world.pipeline, trigger="api")
        delivery.run_execute(run_id=run.pk)  # in this thread: on this test's connection

    sys.setprofile(None)
    assert frames_kept, "the engine's frames were not kept: this test proves nothing"
    run.refresh_from_db()
    assert run.state == RunState.WAITING
    assert "503" in run.last_error
    assert _open_cursors() == []
