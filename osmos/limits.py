"""Request body limits outside ingest (SPEC §7: "every request body has a size limit").

Django checks ``DATA_UPLOAD_MAX_MEMORY_SIZE`` only when a view reads ``request.body`` or
``request.POST``; Django REST framework's parsers read the raw stream and never check it. This
middleware refuses, before any view runs, a body whose declared ``Content-Length`` is over the
limit: ``413`` (JSON with ``detail`` under ``/api/``, the error page elsewhere), without reading
it. The ingest endpoint is exempt: it enforces its own, larger ``INGEST_MAX_BODY_BYTES``.
A body without ``Content-Length`` reaches Django as an empty stream (WSGI), so it costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from osmos.api import PROBLEM_CONTENT_TYPE, problem

_EXEMPT_PREFIXES = ("/ingest/",)


class BodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and not request.path.startswith(_EXEMPT_PREFIXES):
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0  # Django reads a malformed length as an empty body
            if declared > limit:
                return _too_large(request, limit)
        return self.get_response(request)


def _too_large(request: HttpRequest, limit: int) -> HttpResponse:
    detail = f"The request body is larger than the limit of {limit} bytes."
    if request.path.startswith("/api/"):
        # An RFC 9457 problem like every API error (SPEC §6).
        response: HttpResponse = JsonResponse(
            problem(413, detail, max_body_bytes=limit),
            status=413,
            content_type=PROBLEM_CONTENT_TYPE,
        )
    else:
        response = render(request, "error.html", {"status": 413, "detail": detail}, status=413)
    # The body was not read: the connection cannot carry another request.
    response["Connection"] = "close"
    return response
