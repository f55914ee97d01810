"""``X-Request-ID`` on every response, and the web process's request counters.

The id comes from the request's own ``X-Request-ID`` only when settings.REQUEST_ID_TRUSTED
(a proxy in front of us sets it; a client could otherwise choose the ids in our logs), and
only when it is short and made of safe characters; else a new one is made.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from osmos.observability import context, metrics

_SAFE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id_of(request: HttpRequest) -> str:
    if settings.REQUEST_ID_TRUSTED:
        given = request.headers.get("X-Request-ID", "")
        if _SAFE_ID.fullmatch(given):
            return given
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_of(request)
        request.request_id = request_id
        # organization=None: reset at the end of the request whatever process_view set.
        with context.bind(request_id=request_id, organization=None):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        if request.path.startswith("/ingest/"):
            metrics.INGEST_REQUESTS.labels(status=str(response.status_code)).inc()
        return response

    def process_view(self, request: HttpRequest, view, args, kwargs) -> None:
        # Pages know their organization by now (OrganizationMiddleware ran); API requests
        # learn theirs in DRF's authentication, which binds it itself.
        organization = getattr(request, "organization", None)
        if organization is not None:
            context.organization.set(str(organization.pk))
