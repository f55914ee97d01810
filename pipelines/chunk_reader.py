"""Reading a run's stored records: which records a run covers (``run_selection``) and a
chunk's rows, streamed in order (``chunk_texts``, ``chunk_rows``), in binary blocks
(``chunk_blocks``) or computed ahead by PostgreSQL while the chunk before is sent
(``HeldChunk``). Every reader holds a server-side cursor on PostgreSQL: close it
explicitly (``contextlib.closing``), never leave it to the garbage collector.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import msgspec
from django.db import connection
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast

from ingest.models import Record
from pipelines.models import RecordFailure, Run, RunChunk

logger = logging.getLogger(__name__)

DB_FETCH_SIZE = 2000
# Rows of a chunk read at a time as one block (``chunk_blocks``).
BLOCK_ROWS = 2000
# The longest the run's thread waits for a chunk computed ahead before reading it itself (a
# 250,000-record chunk is computed in about a second; a database that does not answer must
# not hold the run longer than its own reads would).
HELD_CHUNK_WAIT_SECONDS = 30.0

_decode = msgspec.json.Decoder().decode


def run_selection(run: Run) -> QuerySet[Record]:
    """The source records a run covers (a retry run: its parent's failed records)."""
    records = Record.objects.filter(
        organization_id=run.organization_id,
        connector_id=run.pipeline.source_id,
        sequence__gt=run.sequence_from,
        sequence__lte=run.sequence_to,
    )
    if run.parent_id:
        failed = RecordFailure.objects.filter(run_id=run.parent_id).values("sequence")
        records = records.filter(sequence__in=failed)
    return records


def chunk_texts(run: Run, chunk: RunChunk) -> Generator[tuple[int, str], None, None]:
    """``(sequence, stored JSON text)`` of the chunk's records not confirmed yet, in order,
    streamed from the database. Reading text skips Django's JSONField, which decodes with
    the standard library.

    On PostgreSQL the rows come through a server-side cursor, which only closing this
    generator closes: use it in ``contextlib.closing``. Left to the garbage collector (a
    reference cycle can keep it, e.g. an exception's traceback that holds the reader's
    frame), the close runs whenever a collection does, often inside another statement on
    the same connection; that thread then holds psycopg's (non-reentrant) connection lock,
    which the close waits for: a deadlock.
    """
    return _chunk_texts_query(run, chunk).iterator(chunk_size=DB_FETCH_SIZE)


def _chunk_texts_query(run: Run, chunk: RunChunk) -> QuerySet[Record]:
    start = first_unconfirmed(chunk)
    return (
        run_selection(run)
        .filter(sequence__gt=start, sequence__lte=chunk.sequence_to)
        .order_by("sequence")
        .annotate(text=Cast("data", output_field=TextField()))
        .values_list("sequence", "text")
    )


def chunk_blocks(run: Run, chunk: RunChunk) -> Iterator[tuple[Sequence[int], Sequence[bytes]]]:
    """The rows of ``chunk_texts`` in blocks of up to ``BLOCK_ROWS``: ``(sequences, texts)``,
    each text the stored JSON as the UTF-8 bytes the database sends. Call it in a
    transaction (PostgreSQL: a server-side cursor streams the rows).

    On PostgreSQL the rows come in binary, the text loaded as bytes (psycopg's C loader),
    so no row passes through Django or is decoded and encoded again: the per-row Python
    work of ``chunk_texts`` was a third of a large batch's read time.
    """
    if connection.vendor != "postgresql":
        rows = chunk_texts(run, chunk)
        while block := list(itertools.islice(rows, BLOCK_ROWS)):
            yield [sequence for sequence, _ in block], [text.encode() for _, text in block]
        return
    sql, params = _chunk_texts_query(run, chunk).query.sql_with_params()
    connection.ensure_connection()
    with connection.connection.cursor(name=f"osmos_chunk_{chunk.pk}", binary=True) as cursor:
        yield from _blocks(cursor, sql, params)


def _blocks(cursor: Any, sql: str, params: Sequence[Any]) -> Iterator[tuple[list, list]]:
    _execute(cursor, sql, params)
    return _fetched_blocks(cursor)


def _execute(cursor: Any, sql: str, params: Sequence[Any]) -> None:
    from psycopg.types.string import ByteaBinaryLoader

    # The client encoding is UTF-8 (Django's), so a text value's bytes are its UTF-8.
    cursor.adapters.register_loader("text", ByteaBinaryLoader)
    cursor.execute(sql, params)


def _fetched_blocks(cursor: Any) -> Iterator[tuple[list, list]]:
    while rows := cursor.fetchmany(BLOCK_ROWS):
        yield [row[0] for row in rows], [row[1] for row in rows]


def first_unconfirmed(chunk: RunChunk) -> int:
    """The chunk's records still to send are those after this sequence."""
    return max(chunk.sequence_from, chunk.confirmed_through or 0)


class HeldChunk:
    """A chunk's rows (as ``chunk_blocks`` gives them) computed by PostgreSQL ahead of their
    turn, while the run's thread reads and sends the chunk before.

    A thread of its own opens a connection and declares a ``WITH HOLD`` cursor over the
    chunk's rows in autocommit: PostgreSQL computes every row (``jsonb`` to text, what a
    large batch's read waits for) into the cursor's store when that statement commits. The
    thread only waits for that statement, with no Python work, so it does not contend for
    the GIL with the send. ``blocks`` (in the run's thread) then fetches the rows already
    computed. The stored records of a chunk's range never change, so rows computed early
    are the rows read late. PostgreSQL only: memory stays bounded in this process (the
    cursor's store spills to disk on the server, ``work_mem``).
    """

    def __init__(self, run: Run, chunk: RunChunk) -> None:
        self.chunk_id = chunk.pk
        self.start = first_unconfirmed(chunk)
        self._sql, self._params = _chunk_texts_query(run, chunk).query.sql_with_params()
        self._connect = connection.get_connection_params()
        # The thread's connection is closed by whichever of the two threads is last: never
        # from here while a statement runs on it in the other thread.
        self._lock = threading.Lock()
        self._connection: Any = None
        self._cursor: Any = None
        self._done = False
        self._closed = False
        self._thread = threading.Thread(target=self._declare, name="osmos-held-chunk", daemon=True)
        self._thread.start()

    def _declare(self) -> None:
        import psycopg

        cursor = None
        try:
            self._connection = psycopg.connect(**self._connect, autocommit=True)
            cursor = self._connection.cursor(
                name=f"osmos_held_{self.chunk_id}", binary=True, withhold=True
            )
            _execute(cursor, self._sql, self._params)  # declared: every row computed
        except Exception:
            # Read in turn instead, by the run's thread, where an error is handled as ever.
            logger.warning("computing chunk %s ahead failed", self.chunk_id, exc_info=True)
            cursor = None
        finally:
            with self._lock:
                self._done = True
                self._cursor = cursor
                if self._closed:
                    self._close_connection()

    def matches(self, chunk: RunChunk) -> bool:
        return chunk.pk == self.chunk_id and first_unconfirmed(chunk) == self.start

    def blocks(self) -> Iterator[tuple[list, list]] | None:
        """The chunk's blocks (None: computing them failed or takes longer than
        HELD_CHUNK_WAIT_SECONDS: read it in turn); closes when exhausted."""
        self._thread.join(HELD_CHUNK_WAIT_SECONDS)
        with self._lock:
            ready = self._done and self._cursor is not None
        if not ready:
            self.close()
            return None
        return self._fetched()

    def _fetched(self) -> Iterator[tuple[list, list]]:
        try:
            yield from _fetched_blocks(self._cursor)
        finally:
            self.close()

    def close(self) -> None:
        """Give the rows up; never waits (a statement still running closes when it ends)."""
        with self._lock:
            self._closed = True
            if self._done:
                self._close_connection()

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def chunk_rows(run: Run, chunk: RunChunk) -> Generator[tuple[int, Any], None, None]:
    """``(sequence, data)`` of the chunk's records in order, decoded by msgspec; close it as
    ``chunk_texts``."""
    return decoded(chunk_texts(run, chunk))


def decoded(rows: Iterator[tuple[int, str]]) -> Generator[tuple[int, Any], None, None]:
    return ((sequence, _decode(text)) for sequence, text in rows)
