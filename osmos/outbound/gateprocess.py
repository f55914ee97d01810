"""This process's side of one destination's gate: permits, the concurrency slots it leases
from the store, the send times it claims in blocks, and the pause, pace and AIMD it learns
from answers. What it guarantees and how it holds across processes and hosts:
`osmos.outbound.gate` (which also keeps one of these per destination and process).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError

from osmos.outbound.dbclock import DATABASE_CLOCK
from osmos.outbound.gatestore import MIN_CONCURRENCY, Shared, Store, interval_for
from osmos.outbound.ratelimit import rate_limit, wait_from_headers

logger = logging.getLogger(__name__)

MIN_RATE = 0.1
MAX_RATE = 10_000.0
MAX_CONCURRENCY = 64
# Requests are spaced for this share of the rate limit: the margin absorbs jitter between
# senders (see `osmos.outbound.gate`).
RATE_MARGIN = 0.965
RATE_BLOCK_SECONDS = 0.05
# How late a send time may still be used: with the clock mapping's error (half the best
# recent round trip to the database, ~1 ms) well below the 36 ms RATE_MARGIN allows.
SLOT_GRACE_SECONDS = 0.02
LINGER_SECONDS = 0.5
# A quota's pace is written again only when it changes by more than this share.
PACE_CHANGE = 0.1


def lease_seconds() -> float:
    return float(getattr(settings, "OUTBOUND_GATE_LEASE_SECONDS", 30.0))


def sync_seconds() -> float:
    return float(getattr(settings, "OUTBOUND_GATE_SYNC_SECONDS", 0.05))


def _permit_max_seconds() -> float:
    return float(getattr(settings, "OUTBOUND_GATE_PERMIT_MAX_SECONDS", 600.0))


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
                return interval_for(self.rate, self._shared.pace)
            if self._in_use >= self._limit():
                return sync_seconds()
        return 0.0

    def paused_until(self) -> datetime | None:
        """When the destination-wide pause ends (the database's time), or None."""
        self._sync(force=True)
        with self._cond:
            return self._shared.paused_until if self._paused_until > time.monotonic() else None

    def observe(self, status: int | None, headers: Mapping[str, str] | None) -> None:
        """Learn from an answer (`headers` with lower-case names; None after a connection
        error): pause, pace and AIMD as described in `osmos.outbound.gate`."""
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
                    self._cond.wait(min(self._paused_until - now, sync_seconds()))
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
                self._cond.wait(min(left, sync_seconds()))

    def _resize(self, want: int) -> bool:
        """Ask the store for `want` slots in all; True when this process holds more now."""
        if not self._store_lock.acquire(timeout=sync_seconds()):
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
                ttl=lease_seconds(),
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
                    first = DATABASE_CLOCK.local(db_first, asked, received, result.db_now)
                self._send_times.extend(first + i * result.interval for i in range(result.count))
            return True

    def _maybe_pace(self, rate: float, seconds: float) -> None:
        limit = self.rate if self.rate is not None else math.inf
        if rate >= limit:
            return
        now = time.monotonic()
        written_rate, written_at = self._pace_written
        if written_at > now - sync_seconds() or (
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
        if not force and now - self._synced_at < sync_seconds():
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
            self._pace_until = max(self._pace_until, now + sync_seconds())

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

    @property
    def holder(self) -> str:
        """The lease name of the process this gate belongs to."""
        return self._holder

    @property
    def store(self) -> Store:
        return self._store

    def release_all(self) -> None:
        """Give back every slot this process holds for the destination."""
        if self.holds_slots():
            self._resize(0)
