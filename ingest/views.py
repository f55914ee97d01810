"""The ingest endpoint ``POST /ingest/<token>/`` (SPEC §4).

A plain Django view, not DRF: no session, no CSRF, no content negotiation, and the body is read
once as bytes. The token in the URL is the credential, plus the sender's signature when the
source requires one. Order of checks: token (404), request rate (429), headers (411/413/415),
signature (401), body and records (400/413/422), storage quota (429). Every answer is JSON;
errors carry ``detail``.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from connectors.selectors import source_for_ingest_token
from ingest.body import IngestRefused
from ingest.quotas import check_request_rate
from ingest.services import check_request_headers, records_ingest, sender_verify

logger = logging.getLogger(__name__)


@csrf_exempt
def ingest(request: HttpRequest, token: str) -> JsonResponse:
    if request.method != "POST":
        response = JsonResponse(
            {"detail": "Method not allowed: send records with POST."}, status=405
        )
        response["Allow"] = "POST"
        return response
    try:
        return _ingest(request, token)
    except IngestRefused as refused:
        return JsonResponse(refused.body(), status=refused.status, headers=refused.headers)
    except DatabaseError:
        # The transaction was rolled back: nothing of this request is stored, a retry is safe.
        logger.exception("ingest: database failure")
        return JsonResponse(
            {"detail": "The database is unavailable or busy; nothing was stored. Retry later."},
            status=503,
            headers={"Retry-After": "5"},
        )


def _ingest(request: HttpRequest, token: str) -> JsonResponse:
    source = source_for_ingest_token(token=token)
    if source is None:
        return JsonResponse(
            {"detail": "Unknown ingest URL (the token may have been rotated)."}, status=404
        )
    check_request_rate(connector_id=source.connector_id)
    headers = request.headers
    check_request_headers(
        content_type=headers.get("Content-Type"),
        content_encoding=headers.get("Content-Encoding"),
        content_length=headers.get("Content-Length"),
        idempotency_key=headers.get("Idempotency-Key"),
    )
    body = request.read()
    # Signatures cover the body as it came over the wire (before gzip decoding), as the
    # senders that sign (GitHub, Shopify, Standard Webhooks libraries) compute them.
    sender_verify(source=source, headers=headers, body=body)
    result = records_ingest(
        source=source,
        body=body,
        content_type=headers.get("Content-Type"),
        content_encoding=headers.get("Content-Encoding"),
        idempotency_key=headers.get("Idempotency-Key"),
    )
    response = JsonResponse(result.body, status=result.status)
    if result.replayed:
        response["Idempotent-Replayed"] = "true"
    return response
