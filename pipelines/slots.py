"""One run at a time sends single-record requests to a destination, across every worker.

SPEC: single mode sends "with bounded concurrency per destination". A run's single sender
uses the destination's max_concurrency threads; holding the destination's slot while it
sends keeps a second run (another pipeline to the same API, or a manual run beside a
scheduled one) from doubling that. The slot is a PostgreSQL session advisory lock on the
worker's connection, so a worker that dies (or loses its connection) frees it with the
connection; in the embedded SQLite mode, where one process runs every worker thread, it is
a lock of this process.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

_local_slots: dict[uuid.UUID, threading.Lock] = {}
_local_slots_guard = threading.Lock()


def _advisory_key(destination_id: uuid.UUID) -> int:
    # 64 bits of the connector's UUID; the application takes no other advisory locks.
    return int.from_bytes(destination_id.bytes[:8], "big", signed=True)


@contextmanager
def destination_slot(destination_id: uuid.UUID) -> Iterator[bool]:
    """Try to take the destination's slot without waiting; yields whether it was taken.

    Released when the block ends (or with the database connection, if that goes first).
    """
    if connection.vendor == "postgresql":
        with _advisory_slot(_advisory_key(destination_id)) as taken:
            yield taken
        return
    with _local_slots_guard:
        lock = _local_slots.setdefault(destination_id, threading.Lock())
    taken = lock.acquire(blocking=False)
    try:
        yield taken
    finally:
        if taken:
            lock.release()


@contextmanager
def _advisory_slot(key: int) -> Iterator[bool]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        taken = bool(cursor.fetchone()[0])
    try:
        yield taken
    finally:
        if taken:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:
                # The connection is gone, and the session's locks with it.
                logger.warning("could not release destination slot %s", key, exc_info=True)
