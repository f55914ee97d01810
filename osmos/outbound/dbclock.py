"""The database clock seen from this host, for placing send times the database handed out
(`osmos.outbound.gate`: every shared deadline is computed by the database, never from a
host's clock)."""

from __future__ import annotations

import math
import threading

# The mapping of the database clock onto this host's is re-estimated from a sample at least
# this recent (each claim is a sample; the one with the shortest round trip wins).
CLOCK_SAMPLE_SECONDS = 10.0


class DatabaseClock:
    """The database clock seen from this host: `offset` = database Unix time - monotonic time.

    Each claim is a sample: the database read its clock somewhere between `asked` and
    `received`, so the middle is off by at most half the round trip. The sample with the
    shortest round trip of the last CLOCK_SAMPLE_SECONDS is kept (as NTP does), so a claim
    slowed by a loaded machine does not misplace its send times.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._error = math.inf
        self._taken = -math.inf

    def local(self, db_time: float, asked: float, received: float, db_now: float) -> float:
        """`db_time` (database Unix seconds) on this host's monotonic clock."""
        error = (received - asked) / 2
        with self._lock:
            if error <= self._error or received - self._taken > CLOCK_SAMPLE_SECONDS:
                self._offset = db_now - (asked + received) / 2
                self._error = error
                self._taken = received
            return db_time - self._offset


DATABASE_CLOCK = DatabaseClock()
