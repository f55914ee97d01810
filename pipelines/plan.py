"""Planning a run: its records cut into ``RunChunk`` rows (batch mode: ``batch_size``
records; single mode: settings.DELIVERY_SINGLE_CHUNK_RECORDS), each with an
``Idempotency-Key`` derived from the run and the chunk's sequence range. Once per run."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from connectors.models import WriteMode
from pipelines.chunk_reader import run_selection
from pipelines.leases import locked_if_ours
from pipelines.models import ChunkState, Run, RunChunk


def chunk_idempotency_key(run_id: uuid.UUID, sequence_from: int, sequence_to: int) -> str:
    return f"osmos-{run_id}-{sequence_from}-{sequence_to}"


def plan_run(run: Run, token: uuid.UUID) -> None:
    """Cut the run into chunks and count its records (once; a no-op when already planned)."""
    destination = run.pipeline.destination.destination
    if destination.write_mode == WriteMode.BATCH:
        size = destination.batch_size
    else:
        size = settings.DELIVERY_SINGLE_CHUNK_RECORDS
    ends, total = _chunk_ends(run, size)
    chunks: list[RunChunk] = []
    lower = run.sequence_from
    for upper in ends:
        chunks.append(_chunk(run, len(chunks), lower, upper, size))
        lower = upper
    if total % size:
        chunks.append(_chunk(run, len(chunks), lower, run.sequence_to, total % size))
    with transaction.atomic():
        locked = locked_if_ours(run.id, token)
        if locked is None or locked.planned_at is not None:
            return
        RunChunk.objects.bulk_create(chunks, batch_size=1000)
        Run.objects.filter(pk=run.id).update(records_total=total, planned_at=timezone.now())


def _chunk_ends(run: Run, size: int) -> tuple[list[int], int]:
    """The sequence of every ``size``-th record of the run in order, and the run's record
    count.

    A run over a range that holds every sequence (sequences are unique per connector, so a
    count equal to the range's width means none is missing: nothing purged, not a retry
    run's subset) has its ends at every ``size``-th sequence: one count decides it
    (measured on 1,000,000 records: 0.16 s against 0.87 s for the row numbers below).
    """
    if run.parent_id is None:
        total = run_selection(run).count()
        if total == run.sequence_to - run.sequence_from:
            step = range(run.sequence_from + size, run.sequence_to + 1, size)
            return list(step), total
    return _numbered_chunk_ends(run, size)


def _numbered_chunk_ends(run: Run, size: int) -> tuple[list[int], int]:
    """``_chunk_ends`` for any selection, from one statement (one snapshot, so they agree)
    computed by the database: iterating a million sequences in Python took seconds.

    The count is a second scan rather than ``COUNT(*) OVER ()`` beside the row numbers: that
    window makes PostgreSQL keep every row of the selection before it can answer (measured
    on 1,000,000 records: 2.2-2.8 s, against 1.0-1.1 s for both scans)."""
    sql, params = run_selection(run).values("sequence").query.sql_with_params()
    # The ORM's own SQL for the selection, its values kept as parameters.
    query = (
        "SELECT 0, sequence FROM (SELECT sequence, "  # noqa: S608
        f"ROW_NUMBER() OVER (ORDER BY sequence) AS n FROM ({sql}) selection) numbered "
        f"WHERE n %% %s = 0 UNION ALL SELECT 1, COUNT(*) FROM ({sql}) counted"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, [*params, size, *params])
        rows = cursor.fetchall()
    total = next(value for kind, value in rows if kind == 1)
    return sorted(value for kind, value in rows if kind == 0), total


def _chunk(run: Run, index: int, lower: int, upper: int, count: int) -> RunChunk:
    return RunChunk(
        organization_id=run.organization_id,
        run=run,
        index=index,
        sequence_from=lower,
        sequence_to=upper,
        record_count=count,
        idempotency_key=chunk_idempotency_key(run.id, lower, upper),
    )


def pending_chunks(run_id: uuid.UUID) -> list[RunChunk]:
    return list(RunChunk.objects.filter(run_id=run_id, state=ChunkState.PENDING).order_by("index"))
