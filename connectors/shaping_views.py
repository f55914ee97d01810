"""The live preview of a destination's first request (SPEC §3.2 request shaping).

``GET /connectors/<id>/preview/`` with the edit form's unsaved ``url``, ``method``,
``write_mode`` and ``body_template`` answers the preview block: the checks the save would
make (``connectors.validation.destination_shape_errors``), then the request the test action
would send, built from sample records by the pipelines app (``hooks.destination_preview``).
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from connectors import hooks, selectors
from connectors.forms import body_template_of
from connectors.models import HttpMethod, WriteMode
from connectors.validation import destination_shape_errors
from osmos.tenancy.scope import tenant_object_or_404
from osmos.tenancy.views import organization_required

MAX_PREVIEW_INPUT = 20_000  # characters of a URL or template taken from the query string


@organization_required
@require_GET
def destination_preview(request: HttpRequest, connector_id) -> HttpResponse:
    connectors = selectors.connector_list(organization=request.organization)
    connector = tenant_object_or_404(connectors, request.organization, pk=connector_id)
    if connector.is_source:
        raise Http404("Only a destination sends requests.")
    stored = connector.destination
    query = request.GET
    changes = {
        "url": query.get("url", stored.url)[:MAX_PREVIEW_INPUT].strip() or stored.url,
        "method": query.get("method", stored.method),
        "write_mode": query.get("write_mode", stored.write_mode),
    }
    if "body_template" in query:
        changes["body_template"] = body_template_of(query["body_template"][:MAX_PREVIEW_INPUT])
    else:
        changes["body_template"] = stored.body_template
    errors: list[str] = []
    if changes["method"] not in HttpMethod.values or changes["write_mode"] not in WriteMode.values:
        errors.append("Choose a method and a write mode.")
    else:
        shape = destination_shape_errors(destination=changes, fields=connector.field_specs())
        errors = [error.message for error in shape]
    preview = None
    if not errors:
        preview, problem = hooks.destination_preview(connector=connector, changes=changes)
        errors = [problem] if problem else []
    context = {"preview": preview, "preview_errors": errors}
    return render(request, "connectors/_request_preview.html", context)
