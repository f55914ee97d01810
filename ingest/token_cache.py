"""The ingest endpoint's token lookup, remembered per process for a few seconds.

Why: under many small requests, looking the token up cost each request two database round
trips (Django's connection health check, then the query) and the ORM's CPU, more than storing
its records once the group commit (``ingest.group_commit``) shares the commit
(``bench-ingest-small``, py-spy: ``source_for_ingest_token`` 38-43% of the web process's
samples, the store 24-32%). With the lookup remembered, a request that joins another's
flush does not touch the database at all.

Why it is safe: the lookup is only a hint. Every write checks again, in the transaction
that stores the records and under the connector's row lock, that the token still opens the
source (the current token, or the previous one within its grace period) and that the
sender-verification settings the request was checked against are still the source's (see
``token_opens`` and ``group_commit._STORE_SQL``). A rotated or revoked token, a deleted
connector or a changed verification setting therefore never stores a record, exactly as
before. What the remembered lookup can change: for at most ``TOKEN_CACHE_SECONDS`` after a
rotation, a request with the old token that is refused anyway (invalid records, rate,
signature) is answered with that refusal rather than ``404``; and a request checked against
verification settings that changed meanwhile is refused with ``409`` ("send it again").
Unknown tokens are never remembered (each one is looked up, as before).
"""

from __future__ import annotations

import copy
import threading
import time
from datetime import datetime

from connectors.models import SourceSettings
from connectors.selectors import source_for_ingest_token
from osmos.tenancy.models import hash_secret

# How long a process trusts a looked-up token before reading it again.
TOKEN_CACHE_SECONDS = 10.0
# Most tokens remembered per process (the oldest is forgotten first).
TOKEN_CACHE_SIZE = 10_000

_lock = threading.Lock()
_remembered: dict[str, tuple[float, SourceSettings]] = {}


def source_for_token(*, token: str) -> tuple[SourceSettings | None, str]:
    """The source the ingest ``token`` opens (or None), and the token's hash.

    The hash goes with the request to the write, which checks it again (``auth_matches``).
    Each caller gets its own copy of the source: callers may change its fields.
    """
    token_hash = hash_secret(token)
    now = time.monotonic()
    with _lock:
        found = _remembered.get(token_hash)
    if found is not None and found[0] > now:
        return copy.copy(found[1]), token_hash
    source = source_for_ingest_token(token=token)
    if source is None:
        forget(token_hash)
        return None, token_hash
    with _lock:
        if len(_remembered) >= TOKEN_CACHE_SIZE:
            del _remembered[next(iter(_remembered))]
        _remembered[token_hash] = (now + TOKEN_CACHE_SECONDS, copy.copy(source))
    return source, token_hash


def forget(token_hash: str) -> None:
    """Look this token up again next time (a write found the source changed)."""
    with _lock:
        _remembered.pop(token_hash, None)


def forget_all() -> None:
    """Empty this process's cache (tests)."""
    with _lock:
        _remembered.clear()


def token_opens(source: SourceSettings, *, token_hash: str, now: datetime) -> bool:
    """Whether the token whose hash is ``token_hash`` opens ``source`` at ``now``: its current
    token, or its previous one within the grace period (the Python twin of
    ``group_commit._TOKEN_OK``)."""
    return source.token_hash == token_hash or (
        source.previous_token_hash == token_hash
        and source.previous_token_expires_at is not None
        and source.previous_token_expires_at > now
    )


def verification_of(source: SourceSettings) -> tuple[str, str, str]:
    """The sender-verification settings a request is checked against."""
    return (
        source.verification_scheme,
        source.verification_header,
        source.verification_secret_encrypted,
    )
