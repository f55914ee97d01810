"""Error pages: an RFC 9457 problem under /api/, JSON with ``detail`` under /ingest/, HTML
elsewhere; and the middleware that gives /api/ its paths with or without the final slash."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve

from osmos.api import PROBLEM_CONTENT_TYPE, problem

_API_PREFIX = "/api/"
_JSON_PREFIXES = ("/ingest/",)


def _api_problem(status: int, detail: str) -> JsonResponse:
    return JsonResponse(problem(status, detail), status=status, content_type=PROBLEM_CONTENT_TYPE)


def _respond(request, status: int, detail: str):
    if request.path.startswith(_API_PREFIX):
        return _api_problem(status, detail)
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


class ApiPathMiddleware:
    """``/api/…`` answers the same with or without its final slash, and a JSON 404 otherwise.

    Django's ``APPEND_SLASH`` would redirect a slash-less GET (a client may not follow) and
    raise on a POST (a 500 in DEBUG); here the slash is added before the URL is resolved. An
    unknown API path is a problem document in every mode: with ``DEBUG`` on, Django answers
    404s with its technical HTML page instead of ``handler404``. Placed after
    ``CommonMiddleware``, so its 404 is final before ``APPEND_SLASH`` looks at it.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(_API_PREFIX):
            return self.get_response(request)
        if not request.path_info.endswith("/") and _resolves(request.path_info + "/"):
            request.path_info += "/"
            request.path += "/"
        response = self.get_response(request)
        if response.status_code == 404 and not response.get("Content-Type", "").startswith(
            ("application/json", PROBLEM_CONTENT_TYPE)
        ):
            return _api_problem(404, "Not found.")
        return response


def _resolves(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True
