"""Support staff's "where did record X go?" across every organization (the Django admin).

The same search and trace as the customer's pages, for any source of any organization:
support staff answer a customer's question in one page without switching organizations.
Staff only (``admin.site.admin_view``); nothing here is reachable from a tenant's session.
"""

from __future__ import annotations

import uuid

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from connectors.models import Connector
from ingest.models import Record
from ingest.search import BadMatch, parse_match, records_matching
from pipelines.trace import record_trace


def _source(connector_id: str) -> Connector | None:
    try:
        key = uuid.UUID(connector_id)
    except ValueError:
        return None
    return (
        Connector.objects.filter(pk=key, direction="source").select_related("organization").first()
    )


def find_record(request: HttpRequest) -> HttpResponse:
    params = request.GET
    source = _source(params.get("connector", "")) if params.get("connector") else None
    context = {
        **admin.site.each_context(request),
        "title": "Where did a record go?",
        "source": source,
        "connector_id": params.get("connector", ""),
        "match": params.get("match", ""),
        "error": None,
        "found": None,
        "record": None,
        "traces": None,
    }
    if params.get("connector") and source is None:
        context["error"] = "No source connector with this id."
    elif source is not None and params.get("sequence", "").isdigit():
        record = Record.objects.filter(connector=source, sequence=int(params["sequence"])).first()
        context["record"] = record
        context["traces"] = record_trace(record=record) if record else None
        if record is None:
            context["error"] = "No such record (it may have been purged)."
    elif source is not None and context["match"]:
        try:
            field, value = parse_match(
                context["match"], fields=[n for n, _, _ in source.field_specs()]
            )
        except BadMatch as exc:
            context["error"] = str(exc)
        else:
            context["found"] = records_matching(
                organization=source.organization,
                connector=source,
                field=field,
                value=value,
                limit=50,
            )
    return render(request, "admin/find_record.html", context)
