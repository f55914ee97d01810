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

Where it lives
- this module: one gate per destination and process (`destination_gate`), the lease name of
  the process, and the background thread that renews leases and returns idle slots;
- `osmos.outbound.gateprocess`: `DestinationGate`, the per-process side of one gate (permits,
  slots, send times, pause, pace and AIMD), shared by both stores;
- `osmos.outbound.gatestore`: the stores (PostgreSQL, and in-process for SQLite: the embedded
  mode is one process); `osmos.outbound.dbclock`: the database clock seen from this host.
Call the gate outside a database transaction: it commits its own small writes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from django.db import connection

from osmos.outbound.gateprocess import (
    RATE_MARGIN,
    DestinationGate,
    Permit,
    lease_seconds,
)
from osmos.outbound.gatestore import MemoryStore, PostgresStore, Store

__all__ = ["RATE_MARGIN", "DestinationGate", "Permit", "close_all", "destination_gate"]

logger = logging.getLogger(__name__)

MAINTENANCE_SECONDS = 0.25

# --- registry ------------------------------------------------------------------------------------

_HOLDER = ""
_HOLDER_PID = 0
_gates: dict[uuid.UUID, DestinationGate] = {}
_gates_lock = threading.Lock()
_memory_store = MemoryStore()
_postgres_store = PostgresStore()
_maintainer: threading.Thread | None = None
# Held for one maintenance pass: ``close_all`` waits for a pass in progress, so no pass renews
# or resizes slots of gates it has just given back (and nothing of this process writes to the
# gate tables after it returns: a test's table flush deadlocked with a pass).
_pass_lock = threading.Lock()


def destination_gate(
    destination_id: uuid.UUID, *, rate_per_second: float | None, max_concurrency: int
) -> DestinationGate:
    """This process's gate of a destination (one per destination, shared by threads), with
    the destination's current settings."""
    global _maintainer
    with _gates_lock:
        gate = _gates.get(destination_id)
        if gate is None or gate.holder != _holder():
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
    with _pass_lock:
        with _gates_lock:
            gates = list(_gates.values())
            _gates.clear()
        for gate in gates:
            gate.release_all()


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
        with _pass_lock:
            renewed_at = _maintenance_pass(renewed_at)


def _maintenance_pass(renewed_at: float) -> float:
    """One pass over this process's gates; returns when the leases were last renewed."""
    try:
        with _gates_lock:
            gates = list(_gates.values())
        for gate in gates:
            gate.maintain()
        now = time.monotonic()
        holding = [g for g in gates if g.holds_slots()]
        if holding and now - renewed_at >= lease_seconds() / 3:
            renewed_at = now
            for store in {id(g.store): g.store for g in holding}.values():
                store.renew(holder=_holder(), ttl=lease_seconds())
    except Exception:  # the thread must survive a database outage
        logger.warning("destination gates: maintenance failed", exc_info=True)
    finally:
        connection.close()
    return renewed_at
