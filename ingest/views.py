"""The ingest endpoint ``POST /ingest/<token>/`` (SPEC §4).

A plain Django view, not DRF: no session, no CSRF, no content negotiation, and the body is read
once as bytes. The token in the URL is the only credential. Every answer is JSON; errors carry
``detail``.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from connectors.selectors import source_for_ingest_token
from ingest.refusals import refusal_response
from ingest.services import check_request_headers, records_ingest
from osmos.errors import DomainError

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
    except DomainError as refused:
        return refusal_response(refused)
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
    headers = request.headers
    check_request_headers(
        content_type=headers.get("Content-Type"),
        content_encoding=headers.get("Content-Encoding"),
        content_length=headers.get("Content-Length"),
        idempotency_key=headers.get("Idempotency-Key"),
    )
    result = records_ingest(
        source=source,
        body=request.read(),
        content_type=headers.get("Content-Type"),
        content_encoding=headers.get("Content-Encoding"),
        idempotency_key=headers.get("Idempotency-Key"),
    )
    response = JsonResponse(result.body, status=result.status)
    if result.replayed:
        response["Idempotent-Replayed"] = "true"
    return response
