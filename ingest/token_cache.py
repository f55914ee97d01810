"""The ingest endpoint's token lookup, remembered per process for a few seconds.

Why: under many small requests, looking the token up cost each request two database round
trips (Django's connection health check, then the query) and the ORM's CPU, more than storing
its records once the group commit (``ingest.group_commit``) shares the commit
(``bench-ingest-small``, py-spy: ``source_for_ingest_token`` 38-43% of the web process's
samples, the store 24-32%). With the lookup remembered, a request that joins another's
flush does not touch the database at all.

Why it is safe: the lookup is only a hint, checked again wherever it could matter.
- Every write checks, in the transaction that stores the records and under the connector's
  row lock, that the token still opens the source (the current token, or the previous one
  within its grace period) and that the sender-verification settings the request was
  checked against are still the source's (``token_opens``, ``group_commit._STORE_SQL``).
  A rotated token, a deleted connector or a changed verification setting therefore never
  stores a record (stricter than before: the lookup and the write used to be separate).
- Every refusal decided with a remembered lookup is confirmed by a fresh lookup before it
  is answered (``refusal_confirmed``): a dead token is answered ``404`` and nothing is
  written down for it, exactly as before; and when the verification settings changed
  meanwhile, the endpoint checks the request again against the current ones.
Unknown tokens are never remembered, and requests with an ``Idempotency-Key`` are always
looked up afresh. The one new answer is ``409`` ("send it again", nothing stored) when the
verification settings change between a request's fresh lookup and its write (the old code,
which checked the signature before the write, stored such a request under settings already
replaced).
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from connectors.models import SourceSettings
from connectors.selectors import source_for_ingest_token
from osmos.errors import Conflict, DomainError, Missing
from osmos.tenancy.models import hash_secret

# How long a process trusts a looked-up token before reading it again.
TOKEN_CACHE_SECONDS = 10.0
# Most tokens remembered per process (the oldest is forgotten first).
TOKEN_CACHE_SIZE = 10_000

_lock = threading.Lock()
_remembered: dict[str, tuple[float, SourceSettings]] = {}


@dataclass(frozen=True, slots=True)
class Lookup:
    """What ``source_for_token`` found: ``source`` (None: the token opens none), the token's
    hash (the write checks it again) and whether the source was ``remembered`` (then a
    refusal must be confirmed, see ``refusal_confirmed``)."""

    source: SourceSettings | None
    token_hash: str
    remembered: bool


def source_for_token(*, token: str) -> Lookup:
    """The source the ingest ``token`` opens, remembered for ``TOKEN_CACHE_SECONDS``.

    Each caller gets its own copy of the source: callers may change its fields.
    """
    token_hash = hash_secret(token)
    now = time.monotonic()
    with _lock:
        found = _remembered.get(token_hash)
    if found is not None and found[0] > now:
        return Lookup(copy.copy(found[1]), token_hash, remembered=True)
    source = source_for_ingest_token(token=token)
    if source is None:
        forget(token_hash)
        return Lookup(None, token_hash, remembered=False)
    with _lock:
        if len(_remembered) >= TOKEN_CACHE_SIZE:
            del _remembered[next(iter(_remembered))]
        _remembered[token_hash] = (now + TOKEN_CACHE_SECONDS, copy.copy(source))
    return Lookup(source, token_hash, remembered=False)


def refusal_confirmed(
    refused: DomainError, *, token: str, checked: SourceSettings
) -> tuple[DomainError, SourceSettings | None]:
    """The refusal to answer for a request refused with a remembered lookup, and its source.

    A refusal stands only if the token still opens the source with the verification settings
    the request was ``checked`` against: looked up afresh, a dead token is ``Missing`` (404,
    and no source: nothing is written down for it), changed verification settings are
    ``VerificationChanged`` (409, "send it again"), anything else is ``refused`` itself.
    """
    forget(hash_secret(token))
    fresh = source_for_token(token=token).source
    if fresh is None:
        return Missing("Unknown ingest URL (the token may have been rotated)."), None
    if verification_of(fresh) != verification_of(checked):
        return VerificationChanged(), fresh
    return refused, fresh


class VerificationChanged(Conflict):
    """The source's sender-verification settings changed while a request was processed."""

    def __init__(self) -> None:
        super().__init__(
            "The source's sender verification changed while this request was processed. "
            "Nothing was stored; send the request again."
        )


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
