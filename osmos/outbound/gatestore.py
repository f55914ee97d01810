"""The shared state behind the destination gates (`osmos.outbound.gate`): where a
destination's send schedule, pause, pace, AIMD concurrency and concurrency leases live.

`PostgresStore` keeps them in PostgreSQL (`outbound_gate_state`, `outbound_gate_lease`; every
time is the database's `clock_timestamp()`), so they hold across processes and hosts;
`MemoryStore` keeps them in this process (SQLite, the embedded mode). Both answer durations
as "seconds from now" and apply the same AIMD rules (pure functions, below).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.db import connection, transaction
from django.utils import timezone

MIN_CONCURRENCY = 1
AIMD_DECREASE_INTERVAL_SECONDS = 1.0


# --- AIMD (pure) ---------------------------------------------------------------------------------


def aimd_decrease(current: int, *, since_last_decrease: float | None) -> int:
    """The concurrency after a 429: halved (at least 1), unless it was already halved less
    than AIMD_DECREASE_INTERVAL_SECONDS ago (`since_last_decrease`, None = never)."""
    if since_last_decrease is not None and since_last_decrease < AIMD_DECREASE_INTERVAL_SECONDS:
        return current
    return max(MIN_CONCURRENCY, current // 2)


def aimd_increase(current: int, *, successes: int, maximum: int) -> int:
    """The concurrency after `successes` successes in a row: one more per `current` of them
    (additive increase), at most `maximum`."""
    if current >= maximum or successes < current:
        return min(current, maximum)
    return current + 1


# --- shared state --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shared:
    """A destination's shared state as read now: durations in seconds from now."""

    paused_for: float  # 0 when not paused
    paused_until: datetime | None
    pace: float | None  # requests per second asked by the destination's quota headers
    concurrency: int | None  # allowed by AIMD; None = max_concurrency


@dataclass(frozen=True, slots=True)
class Claim:
    """Send times claimed from the shared schedule: `count` of them, the first `start`
    seconds from now, `interval` apart. `shared` is the state seen by the same query."""

    start: float
    interval: float
    count: int
    shared: Shared
    # The database's clock when it placed them (Unix seconds), to map them onto this host's
    # clock; None for the in-process store (its times are this process's).
    db_now: float | None = None


class Store(Protocol):
    def read(self, key: uuid.UUID) -> Shared: ...

    def claim(
        self, key: uuid.UUID, *, rate: float | None, count: int, max_start: float
    ) -> Claim | Shared: ...

    def hold(
        self, key: uuid.UUID, *, holder: str, slots: int, keep: int, maximum: int, ttl: float
    ) -> tuple[int, Shared]: ...

    def renew(self, *, holder: str, ttl: float) -> None: ...

    def pause(self, key: uuid.UUID, seconds: float) -> None: ...

    def set_pace(self, key: uuid.UUID, rate: float, seconds: float) -> None: ...

    def decrease(self, key: uuid.UUID, *, maximum: int) -> None: ...

    def increase(self, key: uuid.UUID, *, successes: int, maximum: int) -> None: ...


class MemoryStore:
    """The shared state of one process (SQLite, the embedded mode), on the monotonic clock."""

    @dataclass
    class _State:
        next_send_at: float = -math.inf
        paused_until: float = -math.inf
        paused_until_wall: datetime | None = None
        pace: float | None = None
        paced_until: float = -math.inf
        concurrency: int | None = None
        decreased_at: float | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[uuid.UUID, MemoryStore._State] = {}
        self._leases: dict[tuple[uuid.UUID, str], tuple[int, float]] = {}

    def _state(self, key: uuid.UUID) -> MemoryStore._State:
        return self._states.setdefault(key, MemoryStore._State())

    def _shared(self, state: MemoryStore._State, now: float) -> Shared:
        paused_for = max(0.0, state.paused_until - now)
        return Shared(
            paused_for=paused_for,
            paused_until=state.paused_until_wall if paused_for > 0 else None,
            pace=state.pace if state.paced_until > now else None,
            concurrency=state.concurrency,
        )

    def read(self, key: uuid.UUID) -> Shared:
        with self._lock:
            return self._shared(self._state(key), time.monotonic())

    def claim(
        self, key: uuid.UUID, *, rate: float | None, count: int, max_start: float
    ) -> Claim | Shared:
        with self._lock:
            now = time.monotonic()
            state = self._state(key)
            shared = self._shared(state, now)
            interval = interval_for(rate, shared.pace)
            start = max(state.next_send_at, now)
            if shared.paused_for > 0 or start > now + max_start:
                return shared
            state.next_send_at = start + interval * count
            return Claim(start - now, interval, count, shared)

    def hold(
        self, key: uuid.UUID, *, holder: str, slots: int, keep: int, maximum: int, ttl: float
    ) -> tuple[int, Shared]:
        with self._lock:
            now = time.monotonic()
            state = self._state(key)
            for lease_key, (_, expires) in list(self._leases.items()):
                if expires <= now:
                    del self._leases[lease_key]
            limit = min(maximum, state.concurrency or maximum)
            others = sum(n for (k, h), (n, _) in self._leases.items() if k == key and h != holder)
            # Slots in use stay held (a request on the wire cannot be recalled), even when
            # AIMD has lowered the limit below what the holders have.
            granted = max(keep, min(slots, limit - others))
            if granted:
                self._leases[(key, holder)] = (granted, now + ttl)
            else:
                self._leases.pop((key, holder), None)
            return granted, self._shared(state, now)

    def renew(self, *, holder: str, ttl: float) -> None:
        with self._lock:
            now = time.monotonic()
            for lease_key, (slots, _) in list(self._leases.items()):
                if lease_key[1] == holder:
                    self._leases[lease_key] = (slots, now + ttl)

    def pause(self, key: uuid.UUID, seconds: float) -> None:
        with self._lock:
            state = self._state(key)
            until = time.monotonic() + seconds
            if until > state.paused_until:
                state.paused_until = until
                state.paused_until_wall = timezone.now() + timedelta(seconds=seconds)

    def set_pace(self, key: uuid.UUID, rate: float, seconds: float) -> None:
        with self._lock:
            state = self._state(key)
            state.pace, state.paced_until = rate, time.monotonic() + seconds

    def decrease(self, key: uuid.UUID, *, maximum: int) -> None:
        with self._lock:
            now = time.monotonic()
            state = self._state(key)
            since = None if state.decreased_at is None else now - state.decreased_at
            current = min(maximum, state.concurrency or maximum)
            lowered = aimd_decrease(current, since_last_decrease=since)
            if lowered != current:
                state.concurrency, state.decreased_at = lowered, now

    def increase(self, key: uuid.UUID, *, successes: int, maximum: int) -> None:
        with self._lock:
            state = self._state(key)
            current = min(maximum, state.concurrency or maximum)
            raised = aimd_increase(current, successes=successes, maximum=maximum)
            state.concurrency = None if raised >= maximum else raised


_STATE_COLUMNS = """
    GREATEST(EXTRACT(EPOCH FROM (s.paused_until - n.t)), 0) AS paused_for,
    CASE WHEN s.paused_until > n.t THEN s.paused_until END AS pause_end,
    CASE WHEN s.paced_until > n.t THEN s.paced_rate END AS pace,
    s.concurrency AS allowed
"""


class PostgresStore:
    """The shared state in PostgreSQL; every time is the database's `clock_timestamp()`.

    Runs on the calling thread's connection, in autocommit (outside a transaction) or in a
    short transaction of its own.
    """

    def _ensure(self, cursor, key: uuid.UUID) -> None:
        cursor.execute(
            "INSERT INTO outbound_gate_state (destination_id, next_send_at) "
            "VALUES (%s, clock_timestamp()) ON CONFLICT DO NOTHING",
            [key],
        )

    @staticmethod
    def _shared(row) -> Shared:
        return Shared(
            paused_for=float(row[0] or 0),
            paused_until=row[1],
            pace=row[2],
            concurrency=row[3],
        )

    def read(self, key: uuid.UUID) -> Shared:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {_STATE_COLUMNS} FROM outbound_gate_state s, "  # noqa: S608 (a constant)
                "(SELECT clock_timestamp() AS t) n WHERE s.destination_id = %s",
                [key],
            )
            row = cursor.fetchone()
            if row is None:
                self._ensure(cursor, key)
                return Shared(0.0, None, None, None)
        return self._shared(row)

    def claim(
        self, key: uuid.UUID, *, rate: float | None, count: int, max_start: float
    ) -> Claim | Shared:
        # One statement: lock the row, compute the start and the interval (the rate limit or
        # the destination's pace, whichever is slower) and move the schedule past the block.
        sql = f"""
            WITH n AS (SELECT clock_timestamp() AS t),
            s AS (SELECT * FROM outbound_gate_state WHERE destination_id = %(key)s FOR UPDATE),
            c AS (
                SELECT GREATEST(s.next_send_at, n.t) AS start,
                       1.0 / LEAST(%(rate)s::float8, CASE WHEN s.paced_until > n.t
                                   THEN s.paced_rate ELSE 'Infinity'::float8 END) AS step,
                       {_STATE_COLUMNS}
                FROM s, n
            ),
            u AS (
                UPDATE outbound_gate_state g
                SET next_send_at = c.start + make_interval(secs => c.step * %(count)s)
                FROM c, n
                WHERE g.destination_id = %(key)s
                  AND c.start <= n.t + make_interval(secs => %(max_start)s)
                  AND (g.paused_until IS NULL OR g.paused_until <= n.t)
                RETURNING g.destination_id
            )
            SELECT EXTRACT(EPOCH FROM (c.start - n.t)), c.step, (SELECT count(*) FROM u),
                   c.paused_for, c.pause_end, c.pace, c.allowed, EXTRACT(EPOCH FROM n.t)
            FROM c, n
        """  # noqa: S608 (_STATE_COLUMNS is a constant)
        params = {
            "key": key,
            "rate": rate if rate is not None else math.inf,
            "count": count,
            "max_start": max_start,
        }
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
            if row is None:
                self._ensure(cursor, key)
                cursor.execute(sql, params)
                row = cursor.fetchone()
        shared = self._shared(row[3:7])
        if not row[2]:
            return shared
        step = float(row[1]) if math.isfinite(row[1]) else 0.0
        return Claim(float(row[0]), step, count, shared, db_now=float(row[7]))

    def hold(
        self, key: uuid.UUID, *, holder: str, slots: int, keep: int, maximum: int, ttl: float
    ) -> tuple[int, Shared]:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {_STATE_COLUMNS} FROM outbound_gate_state s, "  # noqa: S608 (a constant)
                "(SELECT clock_timestamp() AS t) n WHERE s.destination_id = %s FOR UPDATE OF s",
                [key],
            )
            row = cursor.fetchone()
            if row is None:
                self._ensure(cursor, key)
                shared = Shared(0.0, None, None, None)
            else:
                shared = self._shared(row)
            cursor.execute(
                "DELETE FROM outbound_gate_lease WHERE destination_id = %s "
                "AND expires_at <= clock_timestamp()",
                [key],
            )
            cursor.execute(
                "SELECT COALESCE(SUM(slots), 0) FROM outbound_gate_lease "
                "WHERE destination_id = %s AND holder <> %s",
                [key, holder],
            )
            others = int(cursor.fetchone()[0])
            limit = min(maximum, shared.concurrency or maximum)
            # Slots in use stay held (a request on the wire cannot be recalled), even when
            # AIMD has lowered the limit below what the holders have.
            granted = max(keep, min(slots, limit - others))
            if granted:
                cursor.execute(
                    "INSERT INTO outbound_gate_lease (destination_id, holder, slots, expires_at) "
                    "VALUES (%s, %s, %s, clock_timestamp() + make_interval(secs => %s)) "
                    "ON CONFLICT (destination_id, holder) DO UPDATE "
                    "SET slots = EXCLUDED.slots, expires_at = EXCLUDED.expires_at",
                    [key, holder, granted, ttl],
                )
            else:
                cursor.execute(
                    "DELETE FROM outbound_gate_lease WHERE destination_id = %s AND holder = %s",
                    [key, holder],
                )
        return granted, shared

    def renew(self, *, holder: str, ttl: float) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE outbound_gate_lease "
                "SET expires_at = clock_timestamp() + make_interval(secs => %s) WHERE holder = %s",
                [ttl, holder],
            )

    def pause(self, key: uuid.UUID, seconds: float) -> None:
        with connection.cursor() as cursor:
            self._ensure(cursor, key)
            cursor.execute(
                "UPDATE outbound_gate_state SET paused_until = GREATEST(paused_until, "
                "clock_timestamp() + make_interval(secs => %s)) WHERE destination_id = %s",
                [seconds, key],
            )

    def set_pace(self, key: uuid.UUID, rate: float, seconds: float) -> None:
        with connection.cursor() as cursor:
            self._ensure(cursor, key)
            cursor.execute(
                "UPDATE outbound_gate_state SET paced_rate = %s, "
                "paced_until = clock_timestamp() + make_interval(secs => %s) "
                "WHERE destination_id = %s",
                [rate, seconds, key],
            )

    def decrease(self, key: uuid.UUID, *, maximum: int) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            self._ensure(cursor, key)
            cursor.execute(
                "SELECT concurrency, EXTRACT(EPOCH FROM (clock_timestamp() - decreased_at)) "
                "FROM outbound_gate_state WHERE destination_id = %s FOR UPDATE",
                [key],
            )
            concurrency, since = cursor.fetchone()
            current = min(maximum, concurrency or maximum)
            lowered = aimd_decrease(
                current, since_last_decrease=None if since is None else float(since)
            )
            if lowered != current:
                cursor.execute(
                    "UPDATE outbound_gate_state SET concurrency = %s, "
                    "decreased_at = clock_timestamp() WHERE destination_id = %s",
                    [lowered, key],
                )

    def increase(self, key: uuid.UUID, *, successes: int, maximum: int) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT concurrency FROM outbound_gate_state WHERE destination_id = %s FOR UPDATE",
                [key],
            )
            row = cursor.fetchone()
            if row is None or row[0] is None:
                return
            raised = aimd_increase(min(maximum, row[0]), successes=successes, maximum=maximum)
            cursor.execute(
                "UPDATE outbound_gate_state SET concurrency = %s WHERE destination_id = %s",
                [None if raised >= maximum else raised, key],
            )


def interval_for(rate: float | None, pace: float | None) -> float:
    """Seconds between two requests for a rate limit and a destination's pace (0: no limit)."""
    slowest = min(r for r in (rate, pace, math.inf) if r is not None)
    return 0.0 if math.isinf(slowest) else 1.0 / slowest
