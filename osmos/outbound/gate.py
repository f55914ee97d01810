"""The destination gate: per-destination rate limit, concurrency limit and pause, held across
runs, worker processes and hosts (SPEC §5.2).

    gate = destination_gate(destination_id, rate_per_second=20, max_concurrency=8)
    permit = gate.acquire(max_wait=5.0)       # None: not within 5 s (gate.wait_hint() says when)
    if permit is not None:
        with permit:
            response = session.send(...)
        gate.observe(response.status, response.headers)   # or the DeliveryError's

What it guarantees
- **Rate**: requests to one destination are spaced by at least 1 / (RATE_MARGIN x rate)
  seconds of the database clock, whichever process or host sends them, so any 1-second window
  holds at most `rate` of them even when sends are off their times by up to ~36 ms (at 20/s
  the slots are 51.8 ms apart; a 21st request in one second needs 36 ms of compression). Of
  that, at most 21 ms is ours (SLOT_GRACE_SECONDS + the clock mapping's error); the rest is
  left to the network and the receiver. The price is RATE_MARGIN: a destination limited to
  100/s receives at most 96.5 (measured: bench-throttle).
- **Concurrency**: at most `max_concurrency` (or what AIMD allows, below) permits are held at
  once across processes. A process that dies holding some gets them back after
  OUTBOUND_GATE_LEASE_SECONDS (its lease is no longer renewed); a permit a live process never
  releases expires after OUTBOUND_GATE_PERMIT_MAX_SECONDS.
- **Pause**: `observe` of a 429 or 503 with `Retry-After`, or of a RateLimit quota at 0 with a
  reset, pauses every request to the destination until then: in this process at once, in other
  processes at their next synchronisation (at most OUTBOUND_GATE_SYNC_SECONDS later; requests
  already sent are not recalled). A quota that is not yet 0 paces the sending so that it lasts
  until its reset (`remaining / reset` per second, when lower than the rate limit).
- **AIMD**: a 429 halves the concurrency allowed (at most once a second: the other requests in
  flight when the first 429 came say nothing new); then every `concurrency` successes in a
  row raise it by one, up to `max_concurrency`. Requests already in flight keep their slots:
  the lower limit applies to new permits.

How it holds across hosts, and why it stays fast
Shared state is in PostgreSQL (the one service every deployment has; the broker may be Redis
or RabbitMQ): one `outbound_gate_state` row per destination and one `outbound_gate_lease` row
per process that holds concurrency slots. Every shared deadline is computed by the database
(`clock_timestamp()`), never from a host's clock, and handed to the process as "seconds from
now". A process does not ask the database for each request: it leases in blocks.
- Rate: it claims the next `rate x RATE_BLOCK_SECONDS` send times in one UPDATE (at least
  one), and spends them locally. They are placed on the host's monotonic clock through an
  estimate of the database clock (NTP-style: the claim with the shortest round trip of the
  last 10 s; ~1 ms of error on one machine or in a data centre). A send time not used within
  SLOT_GRACE_SECONDS (20 ms) of its time is dropped: used later, it could bunch with the next.
  At 20/s that is one claim per request (20 queries/s); at 10,000/s, one per ~480.
- Concurrency: it leases as many slots as it has requests waiting, keeps them while it is busy
  and returns them after LINGER_SECONDS without use, so a run that sends back to back takes
  one lease and then none. Measured on PostgreSQL, 8 threads of one process, no rate limit:
  ~35,000 acquire+release a second (~30 us each, against ~570 us per request of single mode
  at its ~1,750 requests/s) and 16 queries a second, all of them the periodic read below.
- Pause, pace and AIMD: read with the rate claim or, with no rate limit, once per
  OUTBOUND_GATE_SYNC_SECONDS (default 0.05 s: 20 primary-key reads a second per busy process).
A background thread per process renews the leases every third of their TTL (so a request that
lasts minutes keeps its slot) and returns idle slots. A process frozen longer than the TTL
(SIGSTOP, a VM pause) loses its lease while its requests may still be in flight: the limit can
then be exceeded until they end.

On SQLite (the embedded mode: one process) the same logic runs on an in-process store.
Call the gate outside a database transaction: it commits its own small writes.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from osmos.outbound.ratelimit import rate_limit, wait_from_headers

logger = logging.getLogger(__name__)

MIN_RATE = 0.1
MAX_RATE = 10_000.0
MIN_CONCURRENCY = 1
MAX_CONCURRENCY = 64
# Requests are spaced for this share of the rate limit: the margin absorbs jitter between
# senders (see the module docstring).
RATE_MARGIN = 0.965
RATE_BLOCK_SECONDS = 0.05
# How late a send time may still be used: with the clock mapping's error (half the best
# recent round trip to the database, ~1 ms) well below the 36 ms RATE_MARGIN allows.
SLOT_GRACE_SECONDS = 0.02
# The mapping of the database clock onto this host's is re-estimated from a sample at least
# this recent (each claim is a sample; the one with the shortest round trip wins).
CLOCK_SAMPLE_SECONDS = 10.0
LINGER_SECONDS = 0.5
AIMD_DECREASE_INTERVAL_SECONDS = 1.0
# A quota's pace is written again only when it changes by more than this share.
PACE_CHANGE = 0.1
MAINTENANCE_SECONDS = 0.25


def _lease_seconds() -> float:
    return float(getattr(settings, "OUTBOUND_GATE_LEASE_SECONDS", 30.0))


def _sync_seconds() -> float:
    return float(getattr(settings, "OUTBOUND_GATE_SYNC_SECONDS", 0.05))


def _permit_max_seconds() -> float:
    return float(getattr(settings, "OUTBOUND_GATE_PERMIT_MAX_SECONDS", 600.0))


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
            interval = _interval(rate, shared.pace)
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


class _DatabaseClock:
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


_CLOCK = _DatabaseClock()


def _interval(rate: float | None, pace: float | None) -> float:
    """Seconds between two requests for a rate limit and a destination's pace (0: no limit)."""
    slowest = min(r for r in (rate, pace, math.inf) if r is not None)
    return 0.0 if math.isinf(slowest) else 1.0 / slowest


# --- the gate of one destination in this process -------------------------------------------------


class Permit:
    """The right to send one request now. Release it (or leave its `with` block) when the
    request has ended; releasing twice is harmless."""

    __slots__ = ("_gate", "_id", "released")

    def __init__(self, gate: DestinationGate, permit_id: int) -> None:
        self._gate = gate
        self._id = permit_id
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._gate._release(self._id)

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class DestinationGate:
    """This process's side of one destination's gate; shared by its threads (see
    `destination_gate`)."""

    def __init__(
        self,
        destination_id: uuid.UUID,
        *,
        rate_per_second: float | None,
        max_concurrency: int,
        store: Store,
        holder: str,
    ) -> None:
        self.destination_id = destination_id
        self._store = store
        self._holder = holder
        self._cond = threading.Condition()
        self._store_lock = threading.Lock()  # one store call at a time per gate and process
        self.configure(rate_per_second=rate_per_second, max_concurrency=max_concurrency)
        self._held = 0
        self._in_use = 0
        self._waiting = 0
        self._permits: dict[int, float] = {}  # permit id -> monotonic expiry
        self._ids = itertools.count()
        self._send_times: deque[float] = deque()
        self._shared = Shared(0.0, None, None, None)
        self._paused_until = -math.inf  # monotonic
        self._pace_until = -math.inf
        self._synced_at = -math.inf
        self._renewed_at = time.monotonic()
        self._last_active = time.monotonic()
        self._successes = 0
        self._pace_written: tuple[float, float] = (0.0, -math.inf)  # rate, when

    def configure(self, *, rate_per_second: float | None, max_concurrency: int) -> None:
        if rate_per_second is not None and not MIN_RATE <= rate_per_second <= MAX_RATE:
            raise ValueError(f"rate_per_second must be null or {MIN_RATE}-{MAX_RATE:,.0f}")
        if not MIN_CONCURRENCY <= max_concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"max_concurrency must be {MIN_CONCURRENCY}-{MAX_CONCURRENCY}")
        self.rate = None if rate_per_second is None else rate_per_second * RATE_MARGIN
        self.max_concurrency = max_concurrency

    # -- public -----------------------------------------------------------------------------------

    def acquire(self, max_wait: float) -> Permit | None:
        """A permit once a concurrency slot and a send time are free and the destination is
        not paused, waiting at most `max_wait` seconds; None when that is not possible in time
        (`wait_hint` then says how long to wait)."""
        deadline = time.monotonic() + max(0.0, max_wait)
        with self._cond:
            self._waiting += 1
        try:
            if not self._take_slot(deadline):
                return None
            if not self._wait_for_send_time(deadline):
                self._release_slot()
                return None
            with self._cond:
                permit_id = next(self._ids)
                self._permits[permit_id] = time.monotonic() + _permit_max_seconds()
            return Permit(self, permit_id)
        finally:
            with self._cond:
                self._waiting -= 1
                self._last_active = time.monotonic()

    def wait_hint(self) -> float:
        """Seconds until a permit may be available: the pause's end, the next send time, or a
        short retry when every slot is taken."""
        now = time.monotonic()
        with self._cond:
            if self._paused_until > now:
                return self._paused_until - now
            if self._rate_applies():
                if self._send_times:
                    return max(0.0, self._send_times[0] - now)
                return _interval(self.rate, self._shared.pace)
            if self._in_use >= self._limit():
                return _sync_seconds()
        return 0.0

    def paused_until(self) -> datetime | None:
        """When the destination-wide pause ends (the database's time), or None."""
        self._sync(force=True)
        with self._cond:
            return self._shared.paused_until if self._paused_until > time.monotonic() else None

    def observe(self, status: int | None, headers: Mapping[str, str] | None) -> None:
        """Learn from an answer (`headers` with lower-case names; None after a connection
        error): pause, pace and AIMD as described in the module docstring."""
        headers = {k.lower(): v for k, v in headers.items()} if headers else None
        wait = wait_from_headers(status, headers)
        quota = rate_limit(headers)
        if wait is not None and wait > 0 and (status in (429, 503) or quota.remaining == 0):
            self._store_call(self._store.pause, self.destination_id, wait)
            with self._cond:
                self._paused_until = max(self._paused_until, time.monotonic() + wait)
                self._send_times.clear()
        elif quota.remaining and quota.reset_after:
            self._maybe_pace(quota.remaining / quota.reset_after, quota.reset_after)
        if status == 429:
            self._successes = 0
            self._store_call(
                self._store.decrease, self.destination_id, maximum=self.max_concurrency
            )
            self._sync(force=True)
        elif status is not None and 200 <= status < 300:
            self._count_success()

    # -- concurrency ------------------------------------------------------------------------------

    def _limit(self) -> int:
        return min(self.max_concurrency, self._shared.concurrency or self.max_concurrency)

    def _take_slot(self, deadline: float) -> bool:
        while True:
            self._sync()
            now = time.monotonic()
            with self._cond:
                if self._paused_until > now:
                    if self._paused_until > deadline:
                        return False
                    self._cond.wait(min(self._paused_until - now, _sync_seconds()))
                    continue
                limit = self._limit()
                if self._in_use < min(self._held, limit):
                    self._in_use += 1
                    return True
                want = min(limit, self._in_use + self._waiting)
                grow = self._held < want
            if grow and self._resize(want):
                continue
            with self._cond:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, _sync_seconds()))

    def _resize(self, want: int) -> bool:
        """Ask the store for `want` slots in all; True when this process holds more now."""
        if not self._store_lock.acquire(timeout=_sync_seconds()):
            return False
        try:
            with self._cond:
                before, in_use = self._held, self._in_use
            result = self._store_guarded(
                self._store.hold,
                self.destination_id,
                holder=self._holder,
                slots=want,
                keep=in_use,
                maximum=self.max_concurrency,
                ttl=_lease_seconds(),
            )
            if result is None:
                return False
            granted, shared = result
            with self._cond:
                self._held = granted
                self._apply(shared)
                self._renewed_at = time.monotonic()
                self._cond.notify_all()
            return granted > before
        finally:
            self._store_lock.release()

    def _release(self, permit_id: int) -> None:
        with self._cond:
            if self._permits.pop(permit_id, None) is None:
                return  # expired and already given back
        self._release_slot()

    def _release_slot(self) -> None:
        with self._cond:
            self._in_use -= 1
            self._last_active = time.monotonic()
            self._cond.notify()
            shrink = self._held > self._limit()
            target = max(self._in_use + self._waiting, 0)
        if shrink:
            self._resize(min(target, self._limit()))

    # -- rate -------------------------------------------------------------------------------------

    def _rate_applies(self) -> bool:
        return self.rate is not None or self._pace_until > time.monotonic()

    def _wait_for_send_time(self, deadline: float) -> bool:
        if not self._rate_applies():
            return True
        while True:
            now = time.monotonic()
            with self._cond:
                while self._send_times and self._send_times[0] < now - SLOT_GRACE_SECONDS:
                    self._send_times.popleft()  # too late to use: it would bunch with the next
                send_at = self._send_times[0] if self._send_times else None
                if send_at is not None:
                    if send_at > deadline:
                        return False
                    self._send_times.popleft()
            if send_at is None:
                if not self._claim(deadline):
                    return False
                continue
            if send_at > now:
                time.sleep(send_at - now)
            if time.monotonic() - send_at <= SLOT_GRACE_SECONDS:
                return True
            # Woke up too late (a loaded machine): sending now could bunch with the next send
            # time, so this one is dropped and the next taken.

    def _claim(self, deadline: float) -> bool:
        """Claim the next block of send times; False when none starts before `deadline`."""
        with self._store_lock:
            with self._cond:
                if self._send_times:
                    return True  # another thread claimed meanwhile
            rate = self.rate if self.rate is not None else math.inf
            pace = self._shared.pace or math.inf
            count = max(1, round(min(rate, pace) * RATE_BLOCK_SECONDS))
            asked = time.monotonic()
            result = self._store_guarded(
                self._store.claim,
                self.destination_id,
                rate=self.rate,
                count=count,
                max_start=max(0.0, deadline - asked),
            )
            if result is None:
                return False
            received = time.monotonic()
            with self._cond:
                if isinstance(result, Shared):
                    self._apply(result, at=received)
                    return False
                self._apply(result.shared, at=received)
                if result.db_now is None:
                    first = received + result.start
                else:
                    db_first = result.db_now + result.start
                    first = _CLOCK.local(db_first, asked, received, result.db_now)
                self._send_times.extend(first + i * result.interval for i in range(result.count))
            return True

    def _maybe_pace(self, rate: float, seconds: float) -> None:
        limit = self.rate if self.rate is not None else math.inf
        if rate >= limit:
            return
        now = time.monotonic()
        written_rate, written_at = self._pace_written
        if written_at > now - _sync_seconds() or (
            self._pace_until > now and abs(rate - written_rate) <= PACE_CHANGE * written_rate
        ):
            return
        self._pace_written = (rate, now)
        self._store_call(self._store.set_pace, self.destination_id, rate, seconds)
        with self._cond:
            self._pace_until = now + seconds
            self._shared = Shared(
                self._shared.paused_for, self._shared.paused_until, rate, self._shared.concurrency
            )

    def _count_success(self) -> None:
        with self._cond:
            if self._shared.concurrency is None:
                return
            self._successes += 1
            successes = self._successes
        if successes >= self._limit():
            self._successes = 0
            self._store_call(
                self._store.increase,
                self.destination_id,
                successes=successes,
                maximum=self.max_concurrency,
            )
            self._sync(force=True)

    # -- shared state -----------------------------------------------------------------------------

    def _sync(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._synced_at < _sync_seconds():
            return
        self._synced_at = now  # the other threads do not read it again meanwhile
        shared = self._store_guarded(self._store.read, self.destination_id)
        if shared is not None:
            with self._cond:
                self._apply(shared)

    def _apply(self, shared: Shared, *, at: float | None = None) -> None:
        """Take the state just read (caller holds the condition)."""
        now = time.monotonic() if at is None else at
        self._shared = shared
        self._synced_at = now
        if shared.paused_for > 0:
            self._paused_until = max(self._paused_until, now + shared.paused_for)
        elif self._paused_until > now:
            self._paused_until = now  # resumed elsewhere (or the pause moved)
        if shared.pace is not None:
            self._pace_until = max(self._pace_until, now + _sync_seconds())

    def _store_call(self, method, *args, **kwargs):
        with self._store_lock:
            return self._store_guarded(method, *args, **kwargs)

    def _store_guarded(self, method, *args, **kwargs):
        """A store call; a database error is logged and answered None: the gate then keeps
        its last known state (it fails closed for new slots, open for what it holds)."""
        try:
            return method(*args, **kwargs)
        except DatabaseError:
            logger.warning("destination gate %s: store unavailable", self.destination_id)
            return None

    # -- maintenance (the background thread) ------------------------------------------------------

    def maintain(self) -> None:
        now = time.monotonic()
        with self._cond:
            expired = [pid for pid, expires in self._permits.items() if expires <= now]
            for pid in expired:
                del self._permits[pid]
        for _ in expired:
            logger.warning("destination gate %s: a permit was never released", self.destination_id)
            self._release_slot()
        with self._cond:
            target = self._in_use + self._waiting
            idle = self._held > target and now - self._last_active > LINGER_SECONDS
        if idle:
            self._resize(target)

    def holds_slots(self) -> bool:
        return self._held > 0


# --- registry ------------------------------------------------------------------------------------

_HOLDER = ""
_HOLDER_PID = 0
_gates: dict[uuid.UUID, DestinationGate] = {}
_gates_lock = threading.Lock()
_memory_store = MemoryStore()
_postgres_store = PostgresStore()
_maintainer: threading.Thread | None = None


def destination_gate(
    destination_id: uuid.UUID, *, rate_per_second: float | None, max_concurrency: int
) -> DestinationGate:
    """This process's gate of a destination (one per destination, shared by threads), with
    the destination's current settings."""
    global _maintainer
    with _gates_lock:
        gate = _gates.get(destination_id)
        if gate is None or gate._holder != _holder():
            store: Store = _postgres_store if connection.vendor == "postgresql" else _memory_store
            gate = DestinationGate(
                destination_id,
                rate_per_second=rate_per_second,
                max_concurrency=max_concurrency,
                store=store,
                holder=_holder(),
            )
            _gates[destination_id] = gate
        else:
            gate.configure(rate_per_second=rate_per_second, max_concurrency=max_concurrency)
        if _maintainer is None or not _maintainer.is_alive():
            _maintainer = threading.Thread(
                target=_maintain_forever, name="osmos-destination-gates", daemon=True
            )
            _maintainer.start()
    return gate


def close_all() -> None:
    """Give back every slot this process holds and forget its gates (a worker shutting down;
    tests). Permits still out stay valid locally but are no longer counted."""
    with _gates_lock:
        gates = list(_gates.values())
        _gates.clear()
    for gate in gates:
        if gate.holds_slots():
            gate._resize(0)


def _holder() -> str:
    # A forked worker process must not share its parent's lease name.
    global _HOLDER, _HOLDER_PID
    if os.getpid() != _HOLDER_PID:
        _HOLDER_PID = os.getpid()
        _HOLDER = f"{socket.gethostname()[:60]}:{_HOLDER_PID}:{uuid.uuid4().hex[:12]}"
    return _HOLDER


def _maintain_forever() -> None:
    """Renew this process's leases every third of their TTL; give back idle slots and
    permits held too long. Uses (and closes) its own database connection."""
    renewed_at = time.monotonic()
    while True:
        time.sleep(MAINTENANCE_SECONDS)
        try:
            with _gates_lock:
                gates = list(_gates.values())
            for gate in gates:
                gate.maintain()
            now = time.monotonic()
            holding = [g for g in gates if g.holds_slots()]
            if holding and now - renewed_at >= _lease_seconds() / 3:
                renewed_at = now
                for store in {id(g._store): g._store for g in holding}.values():
                    store.renew(holder=_holder(), ttl=_lease_seconds())
        except Exception:  # the thread must survive a database outage
            logger.warning("destination gates: maintenance failed", exc_info=True)
        finally:
            connection.close()
