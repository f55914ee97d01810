"""Writes of the ingest app: storing a request's records, the sample gate, idempotency keys.

Ingest decisions (SPEC §4, documented in the README):

- A request is atomic: all its records are stored, or none.
- Too many records in one request (``settings.INGEST_MAX_RECORDS``) is ``TooLarge`` (413),
  like a body over the size limit: both say "split this request", which the client can
  always do.
- ``Idempotency-Key`` (1 to 255 printable ASCII characters) is remembered per connector for
  ``settings.INGEST_IDEMPOTENCY_TTL_SECONDS``. Only *successful* requests are remembered: a
  refused request stored nothing, so a client may correct its data and retry with the same key.
  Reusing a remembered key with a different body is refused (``Mismatch``, 422, as the IETF
  Idempotency-Key draft recommends) instead of silently answering for the other body.
- Saving a source that is already active answers like the first save (idempotent).

Refusals are ``osmos.errors`` domain errors; the endpoint's statuses are in ``ingest.refusals``.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DataError, connection, transaction
from django.utils import timezone

from connectors.models import (
    DEFAULT_VERIFICATION_HEADER,
    Connector,
    SourceSettings,
    SourceState,
    VerificationScheme,
)
from connectors.schema import (
    RecordError,
)
from ingest import body as ingest_body
from ingest import group_commit, quotas, token_cache
from ingest.idempotency_keys import live_key, remember
from ingest.models import IdempotencyKey
from ingest.storage import RecordRejected, records_insert
from ingest.validation import (
    OVERLAPPED_BODY_BYTES,
    connector_deleted,
    invalid_records,
    schema_of,
    split_records,
    valid_records,
    validated,
)
from osmos.errors import (
    Conflict,
    InputError,
    InvalidInput,
    Malformed,
    Mismatch,
    Missing,
    Unauthorized,
)
from osmos.outbound import signing

MAX_IDEMPOTENCY_KEY_LENGTH = 255
_KEY_CHARACTERS = frozenset(string.printable) - frozenset("\t\n\r\x0b\x0c")


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What the endpoint answers: ``status`` and the JSON ``body``.

    ``replayed`` is True when the answer is the stored one of an earlier request with the same
    ``Idempotency-Key`` (and nothing was stored this time).
    """

    status: int
    body: dict[str, Any]
    replayed: bool = False


class NotASource(InvalidInput):
    """Only source connectors have records and a sample gate."""

    def __init__(
        self, message: str = "Only a source connector receives records and can be saved this way."
    ) -> None:
        super().__init__([InputError(field="direction", message=message)])


class SamplesRequired(Conflict):
    """A source cannot be saved before it has received enough sample records."""

    def __init__(self, *, sample_count: int, samples_required: int):
        self.sample_count = sample_count
        self.samples_required = samples_required
        super().__init__(
            f"This source has received {sample_count} of the {samples_required} sample records "
            "it needs before it can be saved; send more records to its ingest URL.",
            sample_count=sample_count,
            samples_required=samples_required,
        )


def check_request_headers(
    *,
    content_type: str | None,
    content_encoding: str | None,
    content_length: str | None,
    idempotency_key: str | None,
) -> None:
    """Refuse what the headers alone rule out, before the body is read.

    Raises ``UnsupportedFormat`` (content type or encoding), ``TooLarge`` (declared length
    over the limit), ``LengthRequired``, ``Malformed`` (``Idempotency-Key`` or
    ``Content-Length``).
    """
    ingest_body.body_kind(content_type)
    ingest_body.is_gzip(content_encoding)
    _checked_key(idempotency_key)
    ingest_body.check_declared_length(content_length, limit=settings.INGEST_MAX_BODY_BYTES)


def records_ingest(
    *,
    source: SourceSettings,
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    idempotency_key: str | None,
    token_hash: str | None = None,
) -> IngestResult:
    """Validate a request body and store all of its records, or none.

    ``source`` is the connector's ``SourceSettings`` (with ``connector`` loaded); ``body`` is
    the raw request body, gzip when ``content_encoding`` says so. Validation happens before
    the connector is locked, so the lock is held only while rows are written.

    Returns the 200 answer ``{"accepted", "sample_count", "state"}``, or the stored answer of
    an earlier request with the same ``idempotency_key`` (``replayed``).
    ``token_hash`` (the endpoint's, from ``token_cache.source_for_token``): the records are
    stored only if that token still opens the source, and the source's sender-verification
    settings are still those of ``source``, when the transaction takes the connector's lock.
    Raises ``Malformed`` (body or header), ``TooLarge`` (too large, too many records),
    ``UnsupportedFormat`` (content type or encoding), ``InvalidInput`` (invalid records, with
    ``error_total``), ``Mismatch`` (a reused key), ``Missing`` (the connector was deleted, or
    the token no longer opens it), ``VerificationChanged`` (verification
    settings changed).
    Raises ``django.db.DatabaseError`` when the database fails; nothing is stored then either.
    """
    kind = ingest_body.body_kind(content_type)
    key = _checked_key(idempotency_key)
    data = ingest_body.decode_body(
        body, content_encoding=content_encoding, limit=settings.INGEST_MAX_BODY_BYTES
    )
    request_hash = hashlib.sha256(data).hexdigest() if key else ""
    if key:
        # A sequential retry is answered here without validating the body again.
        stored = live_key(connector_id=source.connector_id, key=key, now=timezone.now())
        if stored is not None:
            return _replay(stored, request_hash=request_hash)
    organization_id = source.connector.organization_id
    check = None
    if connection.vendor == "postgresql" and len(data) >= OVERLAPPED_BODY_BYTES:
        # Validated while PostgreSQL parses the records (see ``_store``): same refusals, same
        # order (400/413, then 422, then the quota's 429), nothing stored when one applies.
        # The storage quota is checked after the COPY, before the commit (``_store``).
        schema = schema_of(source.connector)
        records = split_records(data, kind)

        def check() -> None:  # runs while the COPY is open: must not use the database
            if validated(schema, data, kind) != records:
                raise RuntimeError("the validator and the splitter disagree on the records")
    else:
        records = valid_records(source.connector, data, kind)
        quotas.check_storage_quota(organization_id=organization_id, adding=len(records))
    try:
        result = _store(
            source=source,
            records=records,
            key=key,
            request_hash=request_hash,
            token_hash=token_hash,
            check=check,
        )
    except (Missing, token_cache.VerificationChanged):
        if token_hash is not None:
            token_cache.forget(token_hash)
        raise
    if not result.replayed:
        quotas.count_stored(organization_id=organization_id, added=len(records))
    return result


def sender_verify(*, source: SourceSettings, headers: Mapping[str, str], body: bytes) -> None:
    """Check the sender's signature when the source requires one (SPEC §4).

    ``body`` is the raw body as received (gzip still compressed). Raises ``Unauthorized``
    for a missing, malformed, wrong or stale (over 5 minutes) signature.
    """
    scheme = source.verification_scheme
    if scheme == VerificationScheme.NONE:
        return
    try:
        if scheme == VerificationScheme.STANDARD_WEBHOOKS:
            signing.verify_standard_webhooks(
                headers=dict(headers), body=body, secret=source.verification_secret()
            )
        else:
            header = source.verification_header or DEFAULT_VERIFICATION_HEADER
            signing.verify_hmac_sha256(
                header_value=headers.get(header),
                header=header,
                body=body,
                secret=source.verification_secret(),
            )
    except signing.SignatureInvalid as exc:
        raise Unauthorized(f"{exc} Nothing was stored.") from None


def _checked_key(idempotency_key: str | None) -> str | None:
    if idempotency_key is None:
        return None
    if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not set(
        idempotency_key
    ).issubset(_KEY_CHARACTERS):
        raise Malformed(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII "
            "characters.",
        )
    return idempotency_key


def _store(
    *,
    source: SourceSettings,
    records: list[bytes],
    key: str | None,
    request_hash: str,
    token_hash: str | None,
    check: Callable[[], None] | None = None,
) -> IngestResult:
    """Insert ``records`` under the connector's lock, in one transaction.

    Why sequences are taken under a row lock (and not from a database sequence): a pipeline run
    sends "the records since the last run", i.e. ``cursor < sequence <= last_sequence`` where
    ``last_sequence`` is read when the run is created. That is only safe if no record with a
    sequence <= a committed ``last_sequence`` can commit later. Here the ``SourceSettings`` row is
    locked (``SELECT … FOR UPDATE``) before the numbers are taken and stays locked until this
    transaction commits, so ingest transactions of one connector run one after the other and
    sequences are assigned in commit order: once ``last_sequence = L`` is visible, every record
    ``<= L`` is visible too, and any record committed later gets a number ``> L``. A database
    sequence (or ``max(sequence) + 1`` without the lock) would allow a gap that fills in after a
    run has already moved its cursor past it: that record would never be sent.
    """
    if (
        check is None
        and not key
        and connection.vendor == "postgresql"
        and len(records) <= SMALL_REQUEST_RECORDS
    ):
        return _store_small(source=source, records=records, token_hash=token_hash)
    organization_id = source.connector.organization_id
    with transaction.atomic():
        _limit_lock_wait()
        locked = SourceSettings.objects.select_for_update().filter(pk=source.pk).first()
        if locked is None:
            raise connector_deleted()
        # One clock reading per request, taken under the lock so received_at follows sequence.
        now = timezone.now()
        if token_hash is not None:
            _check_still_open(locked, checked=source, token_hash=token_hash, now=now)
        if key:
            # A concurrent duplicate waited for our lock: it finds the key the first one stored.
            stored = live_key(connector_id=locked.connector_id, key=key, now=now)
            if stored is not None:
                return _replay(stored, request_hash=request_hash)
        first_sequence = locked.last_sequence + 1
        try:
            records_insert(
                organization_id=organization_id,
                connector_id=locked.connector_id,
                first_sequence=first_sequence,
                received_at=now,
                records=records,
                check=check,
            )
        except RecordRejected as exc:
            raise _rejected_by_database(exc) from None
        if check is not None:  # validated while stored: the quota comes after validation
            quotas.check_storage_quota(organization_id=organization_id, adding=len(records))
        _count_records(locked, len(records))
        answer = {
            "accepted": len(records),
            "sample_count": locked.record_count,
            "state": locked.state,
        }
        if key:
            remember(
                locked,
                organization_id=organization_id,
                key=key,
                request_hash=request_hash,
                now=now,
                answer=answer,
            )
    source.last_sequence, source.record_count, source.state = (
        locked.last_sequence,
        locked.record_count,
        locked.state,
    )
    return IngestResult(status=200, body=answer)


# Up to this many records (and no Idempotency-Key), a request is stored by the group commit.
SMALL_REQUEST_RECORDS = 1000


def _store_small(
    *, source: SourceSettings, records: list[bytes], token_hash: str | None
) -> IngestResult:
    """``_store`` for a small request without an idempotency key, on PostgreSQL: its records
    join this process's group commit (``ingest.group_commit``), which stores them with the
    other requests waiting at that moment in one transaction, in one round trip."""
    pending = group_commit.Pending(
        connector_id=source.connector_id,
        organization_id=source.connector.organization_id,
        records=[record.decode() for record in records],
        token_hash=token_hash,
        verification=token_cache.verification_of(source),
    )
    try:
        answer = group_commit.committer.store(pending)
    except group_commit.ConnectorGone:
        raise _token_dead() from None
    except group_commit.VerificationChanged:
        raise token_cache.VerificationChanged() from None
    except DataError as exc:  # the validator refuses what jsonb would; kept as a last guard
        message = f"the database refused a record: {str(exc).splitlines()[0]}"
        raise invalid_records([RecordError(index=0, field=None, message=message)], 1) from None
    return IngestResult(status=200, body=answer)


def _token_dead() -> Missing:
    return Missing("Unknown ingest URL (the token was rotated or the connector deleted).")


def _check_still_open(
    locked: SourceSettings, *, checked: SourceSettings, token_hash: str, now: datetime
) -> None:
    """Refuse the write when the token no longer opens the locked source, or its
    verification settings are not those the request was checked against."""
    if not token_cache.token_opens(locked, token_hash=token_hash, now=now):
        raise _token_dead()
    if token_cache.verification_of(locked) != token_cache.verification_of(checked):
        raise token_cache.VerificationChanged()


def _limit_lock_wait() -> None:
    """Give up waiting for the connector lock after ``INGEST_LOCK_TIMEOUT_SECONDS`` (503)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {_lock_timeout_ms()}")


def _lock_timeout_ms() -> int:
    return int(settings.INGEST_LOCK_TIMEOUT_SECONDS * 1000)


def _count_records(source: SourceSettings, count: int) -> None:
    source.last_sequence += count
    source.record_count += count
    if (
        source.state == SourceState.AWAITING_SAMPLES
        and source.record_count >= settings.INGEST_SAMPLES_REQUIRED
    ):
        source.state = SourceState.READY
    source.save(update_fields=["last_sequence", "record_count", "state"])


def _rejected_by_database(exc: RecordRejected) -> InvalidInput:
    index = exc.index if exc.index is not None else 0
    return invalid_records([RecordError(index=index, field=None, message=exc.message)], 1)


# --- idempotency keys -----------------------------------------------------------------------------


def _replay(stored: IdempotencyKey, *, request_hash: str) -> IngestResult:
    if stored.request_hash and stored.request_hash != request_hash:
        raise Mismatch(
            "This Idempotency-Key was already used for a different request body in the last "
            "24 hours; use a new key for a new request.",
            errors=[],
            error_total=0,
            accepted=0,
        )
    return IngestResult(status=stored.response_status, body=stored.response_body, replayed=True)


# --- the sample gate ------------------------------------------------------------------------------


def source_save(*, connector: Connector) -> Connector:
    """Save a source: ``ready`` → ``active``. Saving an active source again changes nothing.

    Raises ``NotASource`` for a destination and ``SamplesRequired`` (with the current count)
    while fewer than ``settings.INGEST_SAMPLES_REQUIRED`` records have been received.
    Returns the connector with its refreshed ``source``.
    """
    if not connector.is_source:
        raise NotASource()
    with transaction.atomic():
        source = SourceSettings.objects.select_for_update().get(connector=connector)
        if source.state != SourceState.ACTIVE:
            if source.record_count < settings.INGEST_SAMPLES_REQUIRED:
                raise SamplesRequired(
                    sample_count=source.record_count,
                    samples_required=settings.INGEST_SAMPLES_REQUIRED,
                )
            source.state = SourceState.ACTIVE
            source.save(update_fields=["state"])
            connector.save(update_fields=["updated_at"])
    connector.source = source
    return connector
