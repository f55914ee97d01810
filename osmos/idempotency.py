"""``Idempotency-Key`` on every API ``POST`` (SPEC §6), applied once in ``TenantScopedViewSet``.

A client that did not get an answer (a timeout, a dropped connection) sends the same ``POST``
again with the same key, and must not create a second run, connector or token:

- the first request with a key *claims* it (a row with no answer yet, committed at once), runs,
  and stores its answer (status, content type, body);
- the same key with the same request (method, path, body) within
  ``API_IDEMPOTENCY_TTL_SECONDS`` (24 h) is answered with the stored answer and
  ``Idempotent-Replayed: true``; nothing runs again;
- the same key with another request is ``422`` (``errors.Mismatch``);
- the same key while the first request is still running is ``409`` (``errors.Conflict``):
  retry later, and the retry is replayed.

Answers of 5xx and 429, and requests that died with an exception, release the key: they
changed nothing, so a retry must be allowed to run. A claim older than
``STALE_CLAIM_SECONDS`` without an answer belonged to a process that died mid-request; the next
request takes it over. Keys are scoped to the organization **and the caller** (the API token,
or the signed-in user): two integrations of one organization that happen to use the same key
(sequential numbers, the same library seed) never see each other's answers, and a member's
token can never be answered with what an owner's request created (the token it issued, say).
Keys are at most ``IDEMPOTENCY_KEY_MAX_LENGTH`` (255) printable ASCII characters; expired rows
are deleted by the retention housekeeping (``expired_keys``).

The ingest endpoint has its own keys, per connector (``ingest.services``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import HttpResponse
from django.http.request import RawPostDataException
from django.utils import timezone

from osmos import errors
from osmos.models import IDEMPOTENCY_KEY_MAX_LENGTH, ApiIdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
STALE_CLAIM_SECONDS = 120  # longer than any API request may run (gunicorn's timeout is 30 s)
_RELEASED_STATUSES = frozenset({429})


class Replay(Exception):  # not an error: the stored answer, raised out of initial()
    """The stored answer of an earlier request with this key."""

    def __init__(self, row: ApiIdempotencyKey):
        super().__init__(row.key)
        self.row = row

    def response(self) -> HttpResponse:
        response = HttpResponse(
            self.row.response_body,
            status=self.row.response_status,
            content_type=self.row.response_content_type or None,
        )
        response[REPLAYED_HEADER] = "true"
        return response


def checked_key(value: str | None) -> str | None:
    """The header's key, or None without one. Raises ``InvalidInput`` for a bad key."""
    if value is None:
        return None
    if not 1 <= len(value) <= IDEMPOTENCY_KEY_MAX_LENGTH or not all(
        " " <= ch <= "~" for ch in value
    ):
        raise errors.InvalidInput(
            [
                errors.InputError(
                    HEADER,
                    f"{HEADER} must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII "
                    "characters (a UUID is a good key).",
                )
            ]
        )
    return value


def caller_of(request) -> str:
    """``token:<id>`` for an API token, ``user:<id>`` for a signed-in person."""
    token = getattr(getattr(request._request, "membership", None), "token", None)
    if token is not None:
        return f"token:{token.pk}"
    return f"user:{request.user.pk}"


def fingerprint_of(request) -> str:
    try:
        body = request._request.body
    except RawPostDataException:  # a multipart body read by the CSRF check: refused (415) later
        body = b"\0unreadable"
    digest = hashlib.sha256()
    for part in (request.method.encode(), request._request.path_info.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def claim(request, organization) -> int | None:
    """Claim the request's key (the id of the claim), or None for a request without one.

    Raises ``Replay`` (a finished request with this key and body), ``Mismatch`` (another
    body), ``Conflict`` (the first request is still running), ``InvalidInput`` (a bad key).
    """
    if request.method != "POST" or organization is None:
        return None
    key = checked_key(request.headers.get(HEADER))
    if key is None:
        return None
    caller = caller_of(request)
    fingerprint = fingerprint_of(request)
    for _attempt in range(3):
        now = timezone.now()
        try:
            with transaction.atomic():
                row = ApiIdempotencyKey.objects.create(
                    organization=organization,
                    caller=caller,
                    key=key,
                    fingerprint=fingerprint,
                    created_at=now,
                )
            return row.pk
        except IntegrityError:
            pass
        existing = ApiIdempotencyKey.objects.filter(
            organization=organization, caller=caller, key=key
        ).first()
        if existing is None:
            continue  # released or purged meanwhile: claim again
        if _expired(existing, now):
            _take_over(existing)
            continue
        if existing.fingerprint != fingerprint:
            raise errors.Mismatch(
                f"This {HEADER} was used for another request in the last 24 hours; "
                "use a new key for a new request."
            )
        if existing.response_status is None:
            raise errors.Conflict(
                f"A request with this {HEADER} is still being processed; retry shortly "
                "and you will get its answer."
            )
        raise Replay(existing)
    raise errors.Conflict(f"Could not claim this {HEADER}; retry shortly.")


def _expired(row: ApiIdempotencyKey, now: datetime) -> bool:
    if row.created_at < now - timedelta(seconds=settings.API_IDEMPOTENCY_TTL_SECONDS):
        return True
    stale = now - timedelta(seconds=STALE_CLAIM_SECONDS)
    return row.response_status is None and row.created_at < stale


def _take_over(row: ApiIdempotencyKey) -> None:
    # Only the row as it was seen: a concurrent request may already have taken it over.
    ApiIdempotencyKey.objects.filter(
        pk=row.pk, created_at=row.created_at, response_status=row.response_status
    ).delete()


def complete(claim_id: int | None, response) -> None:
    """Store ``response`` as the answer of the claim (or release it: 5xx, 429, streaming)."""
    if claim_id is None:
        return
    code = response.status_code
    if code >= 500 or code in _RELEASED_STATUSES or response.streaming:
        release(claim_id)
        return
    if hasattr(response, "render"):
        response.render()
    ApiIdempotencyKey.objects.filter(pk=claim_id).update(
        response_status=code,
        response_content_type=response.get("Content-Type", ""),
        response_body=response.content.decode("utf-8", errors="replace"),
    )


def release(claim_id: int | None) -> None:
    """Forget a claim whose request changed nothing, so that a retry runs."""
    if claim_id is not None:
        ApiIdempotencyKey.objects.filter(pk=claim_id).delete()


def expired_keys(now: datetime) -> QuerySet:
    """Keys past their TTL, of every organization (the retention housekeeping deletes them)."""
    cutoff = now - timedelta(seconds=settings.API_IDEMPOTENCY_TTL_SECONDS)
    return ApiIdempotencyKey.objects.filter(created_at__lt=cutoff)
