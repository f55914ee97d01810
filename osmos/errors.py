"""Error pages: JSON with ``detail`` under /api/ and /ingest/, HTML elsewhere."""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render

_JSON_PREFIXES = ("/api/", "/ingest/")


def _respond(request, status: int, detail: str):
    if request.path.startswith(_JSON_PREFIXES):
        return JsonResponse({"detail": detail}, status=status)
    return render(request, "error.html", {"status": status, "detail": detail}, status=status)


def not_found(request, exception=None):
    return _respond(request, 404, "Not found.")


def permission_denied(request, exception=None):
    return _respond(request, 403, "You do not have permission to do this.")


def bad_request(request, exception=None):
    return _respond(request, 400, "Bad request.")


def server_error(request):
    return _respond(request, 500, "Something went wrong on our side; nothing was changed.")
