"""The ingest endpoint ``POST /ingest/<token>/`` (SPEC §4).

A plain Django view, not DRF: no session, no CSRF, no content negotiation, and the body is read
once as bytes. The token in the URL is the credential, plus the sender's signature when the
source requires one. Order of checks: token (404), request rate (429), headers (413/415), the
body's length (411; a chunked body is read up to the limit, 413 past it), signature (401), body
and records (400/413/422), storage quota (429). Every answer is JSON; errors carry ``detail``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from connectors.models import SourceSettings
from connectors.selectors import source_for_ingest_token
from ingest.body import read_body
from ingest.quotas import check_request_rate
from ingest.refusals import refusal_response
from ingest.rejections import EXCERPT_BYTES, rejection_record
from ingest.services import IngestResult, check_request_headers, records_ingest, sender_verify
from ingest.token_cache import VerificationChanged, refusal_confirmed, source_for_token
from osmos.errors import DomainError
from osmos.observability import metrics
from osmos.tenancy.models import hash_secret

logger = logging.getLogger(__name__)


@csrf_exempt
def ingest(request: HttpRequest, token: str) -> JsonResponse:
    if request.method != "POST":
        response = JsonResponse(
            {"detail": "Method not allowed: send records with POST."}, status=405
        )
        response["Allow"] = "POST"
        return response
    seen = _Seen()
    try:
        response = _ingest(request, token, seen)
    except DomainError as refused:
        if seen.remembered:  # decided with a remembered token lookup: holds only if it still does
            refused, seen.source = refusal_confirmed(refused, token=token, checked=seen.source)
        response = refusal_response(refused)
    except DatabaseError:
        # The transaction was rolled back: nothing of this request is stored, a retry is safe.
        logger.exception("ingest: database failure")
        return JsonResponse(
            {"detail": "The database is unavailable or busy; nothing was stored. Retry later."},
            status=503,
            headers={"Retry-After": "5"},
        )
    # Refusals of the request rate are not written down: a flood must not turn into as many
    # database writes (the rate limit exists to spare the database).
    if seen.source is not None and seen.rate_checked and 400 <= response.status_code < 500:
        connector = seen.source.connector
        rejection_record(
            organization_id=connector.organization_id,
            connector_id=connector.pk,
            connector_name=connector.name,
            status=response.status_code,
            answer=orjson.loads(response.content),
            body_head=seen.body_head,
            client_address=request.META.get("REMOTE_ADDR", ""),
        )
    return response


@dataclass
class _Seen:
    """What the source debugger keeps of a refused request, once known."""

    source: SourceSettings | None = None
    remembered: bool = False  # the source came from this process's token cache
    rate_checked: bool = False  # past the request-rate limit
    body_head: bytes = b""


def _ingest(request: HttpRequest, token: str, seen: _Seen) -> JsonResponse:
    headers = request.headers
    if headers.get("Idempotency-Key") is None:
        # Remembered per process for a few seconds; the write checks the token again.
        lookup = source_for_token(token=token)
        source, token_hash, seen.remembered = lookup.source, lookup.token_hash, lookup.remembered
    else:
        source, token_hash = source_for_ingest_token(token=token), hash_secret(token)
    seen.source = source
    if source is None:
        return JsonResponse(
            {"detail": "Unknown ingest URL (the token may have been rotated)."}, status=404
        )
    check_request_rate(connector_id=source.connector_id)
    seen.rate_checked = True
    check_request_headers(
        content_type=headers.get("Content-Type"),
        content_encoding=headers.get("Content-Encoding"),
        content_length=headers.get("Content-Length"),
        idempotency_key=headers.get("Idempotency-Key"),
    )
    body = read_body(request, limit=settings.INGEST_MAX_BODY_BYTES)
    seen.body_head = body[:EXCERPT_BYTES]
    try:
        result = _verified_ingest(source, token_hash, headers, body)
    except DomainError as refused:
        if not seen.remembered:
            raise
        # Decided with a remembered token lookup: confirm it with a fresh one, and when the
        # verification settings changed meanwhile, check the request again against them.
        refused, seen.source = refusal_confirmed(refused, token=token, checked=source)
        seen.remembered = False
        if seen.source is None or not isinstance(refused, VerificationChanged):
            raise refused from None
        result = _verified_ingest(seen.source, token_hash, headers, body)
    response = JsonResponse(result.body, status=result.status)
    if result.replayed:
        response["Idempotent-Replayed"] = "true"
    elif result.status == 200:
        metrics.INGEST_RECORDS.inc(result.body["accepted"])
    return response


def _verified_ingest(source: SourceSettings, token_hash: str, headers, body: bytes) -> IngestResult:
    # Signatures cover the body as it came over the wire (before gzip decoding), as the
    # senders that sign (GitHub, Shopify, Standard Webhooks libraries) compute them.
    sender_verify(source=source, headers=headers, body=body)
    return records_ingest(
        source=source,
        body=body,
        content_type=headers.get("Content-Type"),
        content_encoding=headers.get("Content-Encoding"),
        idempotency_key=headers.get("Idempotency-Key"),
        token_hash=token_hash,
    )
