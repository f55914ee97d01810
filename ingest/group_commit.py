"""Group commit of small ingest requests on PostgreSQL: one transaction, one WAL flush, many
requests.

Why: with many concurrent one-record requests, each request paid its own commit (a WAL flush)
while holding its connector's row lock, so requests to one connector ran one after the other
at the speed of ``fdatasync`` and of the scheduler waking PostgreSQL backends on a busy
machine (``bench-ingest-small``: wait events IO:WALSync 34-45%, Lock:transactionid 26%).

How (leader/follower, as in PostgreSQL's own WAL group flush): a request whose records are
validated joins this process's queue. If no flush is under way it becomes the *leader*: it
takes the whole queue (its own request first) and stores it on its own database connection
in one implicit transaction, a single round trip (per connector: one statement that takes
the sequence numbers under the connector's row lock and inserts the records, exactly the
statement a lone request used before). Requests that arrive meanwhile wait; when the flush
ends the leader hands the lead to the first waiting request, which stores everything queued
by then. So every request is flushed by itself or by a batch that started after it arrived,
and nobody flushes more than one batch.

Guarantees kept (SPEC §4):
- **200 means stored**: a request's result is set only after the transaction holding its
  records committed (or failed); nothing is answered before.
- **Atomic per request, isolated between requests**: records are validated before they
  join the queue, so an invalid request is refused alone. If the shared transaction fails
  for a reason that may be one request's data (``DataError``, ``IntegrityError``, a
  deadlock), nothing of the batch was stored and every request is stored again *alone*, so
  only the culprit fails. Failures that no request caused (the database is down, the lock
  wait timed out) fail every request of the batch with that error: nothing was stored for any
  of them, and each answers 503 "retry", as it would have alone.
- **Order**: records of one connector get consecutive sequences in queue order, a request's
  records together, under the connector's row lock held until the commit (see
  ``services._store`` for why sequences must be handed out in commit order); connectors are
  locked in id order, so two processes' batches cannot deadlock on each other.
- Quotas, the request rate and idempotency keys are handled by the caller; requests with an
  ``Idempotency-Key`` do not come here (they take ``services._store``).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, connection

from connectors.models import SourceSettings, SourceState
from ingest.models import Record

# Most records one flush stores: bounds the statement (and the time the connector is locked).
MAX_BATCH_RECORDS = 5000

# Per connector (and token) of the batch: the UPDATE takes the connector's row lock (like
# SELECT … FOR UPDATE) and hands out the numbers, the INSERT uses them. A data-modifying CTE
# always runs to completion, whether or not the final SELECT reads it. The UPDATE matches
# only while the request's token still opens the source and the sender-verification settings
# are the ones the request was checked against (``token_cache.auth_matches``); when it does
# not match, nothing is stored and ``token_ok`` (read from the statement's snapshot) tells a
# dead token (404) from changed verification settings (409). ``{p}`` makes the parameter
# names of each statement distinct within the one query.
_STORE_SQL = """
WITH taken AS (
    UPDATE {sources}
       SET last_sequence = last_sequence + %({p}count)s,
           record_count = record_count + %({p}count)s,
           state = CASE WHEN state = %({p}awaiting)s
                         AND record_count + %({p}count)s >= %({p}required)s
                        THEN %({p}ready)s ELSE state END
     WHERE connector_id = %({p}connector)s AND {token_ok}
       AND verification_scheme = %({p}scheme)s AND verification_header = %({p}header)s
       AND verification_secret_encrypted = %({p}secret)s
 RETURNING record_count - %({p}count)s AS counted_before, state, clock_timestamp() AS at,
           last_sequence - %({p}count)s AS before
), inserted AS (
    INSERT INTO {records} (organization_id, connector_id, sequence, received_at, data)
    SELECT %({p}organization)s, %({p}connector)s, taken.before + item.n, taken.at,
           item.data::jsonb
      FROM taken, unnest(%({p}data)s::text[]) WITH ORDINALITY AS item(data, n)
)
SELECT taken.counted_before, taken.state,
       EXISTS (SELECT FROM {sources} WHERE connector_id = %({p}connector)s AND {token_ok})
  FROM (SELECT) AS one LEFT JOIN taken ON true
"""
_TOKEN_OK = """(%({p}token)s::text IS NULL OR token_hash = %({p}token)s
       OR (previous_token_hash = %({p}token)s AND previous_token_expires_at > clock_timestamp()))"""


class ConnectorGone(Exception):
    """The token no longer opens the source (rotated, or the connector was deleted)."""


class VerificationChanged(Exception):
    """The source's sender-verification settings changed after the request was checked."""


@dataclass(eq=False)
class Pending:
    """One request waiting to be stored: its records and, once flushed, its outcome."""

    connector_id: uuid.UUID
    organization_id: uuid.UUID
    records: list[str]
    # What the request was checked against: the token's hash (None: an internal caller that
    # loaded the source itself) and the verification settings (scheme, header, secret).
    token_hash: str | None
    verification: tuple[str, str, str]
    answer: dict[str, Any] | None = None
    error: BaseException | None = None
    lead: bool = False  # set when this request's thread must flush the queue itself
    done: threading.Event = field(default_factory=threading.Event)


class GroupCommitter:
    """The queue of one process (one instance per process, shared by its threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Pending] = []
        self._flushing = False

    def store(self, item: Pending) -> dict[str, Any]:
        """Store ``item``'s records; returns its answer once they are committed.

        Raises ``ConnectorGone``, ``VerificationChanged``, ``DataError`` (the database refused
        the request's data) or another ``DatabaseError`` (nothing of this request was stored).
        Inside a transaction (``atomic``) the records are stored alone, in it: a leader's
        open transaction would commit other requests' records only when it ends, after they
        had been answered.
        """
        if connection.in_atomic_block:
            flush([item])
            return _outcome(item)
        with self._lock:
            self._queue.append(item)
            lead = not self._flushing
            self._flushing = True
        if not lead:
            item.done.wait()  # set by the flush that stored us, or to hand us the lead
        if lead or item.lead:
            self._lead()
        return _outcome(item)

    def _lead(self) -> None:
        """Flush the queue once (the caller's request is its first item), then pass on."""
        with self._lock:
            batch, total = [], 0
            for queued in self._queue:
                if batch and total + len(queued.records) > MAX_BATCH_RECORDS:
                    break
                batch.append(queued)
                total += len(queued.records)
            del self._queue[: len(batch)]
        try:
            flush(batch)
        except BaseException as exc:  # never leave a waiting request without an outcome
            for queued in batch:
                if queued.answer is None and queued.error is None:
                    queued.error = exc
            raise
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.done.set()
                else:
                    self._flushing = False
            for queued in batch:
                queued.done.set()


def flush(batch: list[Pending]) -> None:
    """Store ``batch`` in one transaction; if that fails because of some request's data,
    store each request alone. Sets every item's ``answer`` or ``error``."""
    try:
        _store_together(batch)
    except (DataError, IntegrityError) as exc:
        if len(batch) == 1:
            batch[0].error = exc
            return
        _store_alone(batch)
    except DatabaseError as exc:
        if len(batch) > 1 and _rolled_back_by_conflict(exc):
            _store_alone(batch)
            return
        for item in batch:
            item.error = exc


def _store_alone(batch: list[Pending]) -> None:
    for item in batch:
        try:
            _store_together([item])
        except DatabaseError as exc:
            item.error = exc


def _store_together(batch: list[Pending]) -> None:
    """One round trip, one implicit transaction (autocommit: PostgreSQL runs a simple query of
    several statements as one transaction), one WAL flush for the whole batch."""
    groups: dict[tuple, list[Pending]] = {}
    for item in batch:
        key = (item.connector_id, item.token_hash or "", item.verification)
        groups.setdefault(key, []).append(item)
    keys = sorted(groups)  # connectors locked in id order: two processes cannot deadlock
    sources = connection.ops.quote_name(SourceSettings._meta.db_table)
    records = connection.ops.quote_name(Record._meta.db_table)
    statements = [f"SET LOCAL lock_timeout = {int(settings.INGEST_LOCK_TIMEOUT_SECONDS * 1000)}"]
    params: dict[str, Any] = {}
    for index, key in enumerate(keys):
        items = groups[key]
        prefix = f"c{index}_"
        token_ok = _TOKEN_OK.format(p=prefix)
        statements.append(
            _STORE_SQL.format(sources=sources, records=records, p=prefix, token_ok=token_ok)
        )
        data = [record for item in items for record in item.records]
        scheme, header, secret = items[0].verification
        params.update(
            {
                f"{prefix}count": len(data),
                f"{prefix}awaiting": SourceState.AWAITING_SAMPLES,
                f"{prefix}required": settings.INGEST_SAMPLES_REQUIRED,
                f"{prefix}ready": SourceState.READY,
                f"{prefix}connector": items[0].connector_id,
                f"{prefix}organization": items[0].organization_id,
                f"{prefix}token": items[0].token_hash,
                f"{prefix}scheme": scheme,
                f"{prefix}header": header,
                f"{prefix}secret": secret,
                f"{prefix}data": data,
            }
        )
    rows = []
    # Django's psycopg cursors bind parameters client-side, so this is one simple query.
    with connection.cursor() as cursor:
        cursor.execute(";".join(statements), params)
        for _ in keys:
            cursor.nextset()
            rows.append(cursor.fetchone())
    # Committed: hand out the answers.
    for key, row in zip(keys, rows, strict=True):
        _answer(groups[key], row)


def _answer(items: list[Pending], row: tuple[int | None, str | None, bool]) -> None:
    """Each request's answer as if the requests had been stored one after the other."""
    counted, state_after, token_ok = row
    if counted is None:  # nothing stored: the token is dead, or verification changed
        for item in items:
            item.error = VerificationChanged() if token_ok else ConnectorGone()
        return
    required = settings.INGEST_SAMPLES_REQUIRED
    for item in items:
        counted += len(item.records)
        state = state_after
        # The counter only grows and a source becomes ready exactly when it reaches
        # ``required`` (never before): a request whose count is still short of it saw the
        # source awaiting samples, even if a later request of the batch made it ready.
        if state_after == SourceState.READY and counted < required:
            state = SourceState.AWAITING_SAMPLES
        item.answer = {"accepted": len(item.records), "sample_count": counted, "state": state}


def _outcome(item: Pending) -> dict[str, Any]:
    if item.error is not None:
        raise _copy(item.error)
    assert item.answer is not None
    return item.answer


def _rolled_back_by_conflict(exc: DatabaseError) -> bool:
    """A deadlock or serialization failure: retrying each request alone may succeed."""
    sqlstate = getattr(exc.__cause__, "sqlstate", None) or ""
    return sqlstate.startswith("40")


def _copy(error: BaseException) -> BaseException:
    """A fresh exception per waiting request (several threads may raise the same error)."""
    if isinstance(error, ConnectorGone | VerificationChanged):
        return type(error)()
    if isinstance(error, DatabaseError):
        fresh = type(error)(*error.args)
        fresh.__cause__ = error.__cause__
        return fresh
    return error


committer = GroupCommitter()
