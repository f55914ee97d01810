"""Reading a chunk's stored rows ahead, in a thread, so the database works while we do.

Batch mode is bound by PostgreSQL turning ``jsonb`` into text (``bench-deliver-batch``): read
in line with the work, the database waits while the worker builds the body, sends it and
confirms it, and the worker waits while the database produces the next rows. A
``RowReader`` runs the chunk's query (``records.chunk_query``'s SQL, a server-side cursor in
its own connection and transaction) in a thread and hands over blocks of rows through a
bounded queue: the next block is produced while this one is used, and the next chunk's rows
are read while this chunk is sent (``BatchSender`` starts its reader early).

On PostgreSQL only (the production database); elsewhere the rows are read in line.
Memory: at most READ_AHEAD_BLOCKS blocks of records.DB_FETCH_SIZE rows wait in the queue.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from django.db import connection, transaction

from pipelines.models import Run, RunChunk
from pipelines.records import DB_FETCH_SIZE, chunk_query

READ_AHEAD_BLOCKS = 8
_END = object()


def reads_ahead() -> bool:
    return connection.vendor == "postgresql"


class RowReader:
    """``(sequence, stored JSON text)`` of a chunk's records, as ``chunk_texts`` yields them,
    read by a background thread. Iterate once; ``close()`` always (it stops the thread)."""

    def __init__(self, run: Run, chunk: RunChunk) -> None:
        self._sql, self._params = chunk_query(run, chunk).query.sql_with_params()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=READ_AHEAD_BLOCKS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="osmos-row-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with transaction.atomic(), connection.cursor() as outer:
                # A named (server-side) psycopg cursor: rows arrive a block at a time.
                raw = outer.cursor.connection.cursor(name="osmos_row_reader")
                try:
                    raw.itersize = DB_FETCH_SIZE
                    raw.execute(self._sql, self._params)
                    while not self._stop.is_set():
                        block = raw.fetchmany(DB_FETCH_SIZE)
                        if not block:
                            break
                        self._put(block)
                finally:
                    raw.close()
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
        finally:
            connection.close()  # this thread's own connection

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[tuple[int, str]]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield from item  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(0.1)
