"""Confines each tenant request to its organization in the database (see ``context.py``).

Trusted requests, which must find rows before an organization is known or work across
organizations, keep the application role:
- ``/ingest/<token>/``: the token lookup, then ``COPY`` of the records (which PostgreSQL
  refuses to a role bound by policies);
- the admin, for staff (support works across organizations);
- ``/metrics``: counts across every organization for the operator, behind METRICS_TOKEN
  (no tenant's data leaves it, only totals; see osmos/observability/metrics.py).
An API request with a Bearer token is confined to no organization here and to the token's
organization once ``ApiTokenAuthentication`` has found it (the lookup itself is trusted).
"""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings

from osmos.rls import context

_TRUSTED_PREFIXES = ("/ingest/", "/metrics")
_STAFF_PREFIXES = ("/admin/",)


def _is_trusted(request) -> bool:
    path = request.path_info
    if path.startswith(_TRUSTED_PREFIXES):
        return True
    user = getattr(request, "user", None)
    return path.startswith(_STAFF_PREFIXES) and bool(user and user.is_active and user.is_staff)


def _confined_stream(content: Iterator[bytes], organization_id) -> Iterator[bytes]:
    # A streamed body (CSV downloads) is produced after the middleware returned: confine
    # again while it is being produced.
    with context.tenant_scope(organization_id=organization_id):
        yield from content


class RowLevelSecurityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.DATABASE_IS_POSTGRES or _is_trusted(request):
            return self.get_response(request)
        if not context.enforcement_available():
            return self.get_response(request)
        organization = getattr(request, "organization", None)
        context.confine(organization_id=organization.pk if organization else None)
        try:
            response = self.get_response(request)
            # Token requests learn their organization during the view: stream with that one.
            scope = context.current_scope()
        finally:
            context.release()
        if response.streaming and not response.is_async:
            response.streaming_content = _confined_stream(response.streaming_content, scope)
        return response
