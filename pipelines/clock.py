"""The one clock that decides across hosts: the database's.

Leases, heartbeats, waiting times and the scheduler's sweeps compare times written by one
host with times read by another. Each host's own clock may be minutes off (a VM resumed, NTP
not running), so those times come from PostgreSQL (`clock_timestamp()` / `Now()`), never
from the host. On SQLite (the embedded mode: one process on one host) the host's clock is
the only one, and is used.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone


def database_now() -> datetime:
    """The database's time now (PostgreSQL's ``clock_timestamp()``; the host's on SQLite)."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def database_now_sql() -> Now | datetime:
    """The database's time as a value for ``update()``/``filter()``: computed by the statement
    itself on PostgreSQL (no extra round trip); the host's time on SQLite."""
    if connection.vendor != "postgresql":
        return timezone.now()
    return Now()


def on_database_clock(when: datetime) -> datetime:
    """``when``, a time computed from this host's clock (now + a delay), moved onto the
    database's clock: the same delay from the database's now."""
    if connection.vendor != "postgresql":
        return when
    return database_now() + (when - timezone.now())
