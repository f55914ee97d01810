"""The ingest endpoint's answer to a refused request: which status, which JSON body.

Services raise ``osmos.errors`` domain errors; the endpoint maps them like the API does
(``osmos.api.STATUS_OF``) with one difference that SPEC §4 sets: records that break the
schema are ``422`` (the body was read, its content is refused), not ``400``. Its bodies are
``{"detail", …}`` with, for invalid records, ``errors`` as ``{index, field, message}`` items.
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse

from osmos.api import STATUS_OF, status_of
from osmos.errors import DomainError, InvalidInput

STATUS_OF_INGEST = {**STATUS_OF, InvalidInput: 422}


def refusal_body(error: DomainError) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": error.detail}
    if isinstance(error, InvalidInput):
        body["errors"] = [
            {"index": item.index, "field": item.field, "message": item.message}
            for item in error.errors
        ]
    return {**body, **error.extra}


def refusal_response(error: DomainError) -> JsonResponse:
    return JsonResponse(
        refusal_body(error),
        status=status_of(error, STATUS_OF_INGEST),
        headers=getattr(error, "headers", None),
    )
