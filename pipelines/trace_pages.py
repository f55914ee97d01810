"""Pages that answer "where did record X go?": find a source's records by a field's value,
and one record's fate in every pipeline (the same as the API's trace, SPEC §5.6)."""

from __future__ import annotations

import orjson
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from connectors.models import Connector
from connectors.selectors import connector_get
from ingest.search import BadMatch, parse_match, records_matching
from ingest.selectors import record_get
from osmos.tenancy.views import organization_required
from pipelines.trace import record_trace

PAGE = 50


def _source_or_404(request: HttpRequest, connector_id) -> Connector:
    connector = connector_get(organization=request.organization, connector_id=connector_id)
    if connector is None or not connector.is_source:
        raise Http404("No such source.")
    return connector


@organization_required
def record_search(request: HttpRequest, connector_id) -> HttpResponse:
    connector = _source_or_404(request, connector_id)
    match = request.GET.get("match", "").strip()
    context = {"connector": connector, "match": match, "error": None, "found": None}
    if match:
        try:
            field, value = parse_match(match, fields=[n for n, _, _ in connector.field_specs()])
        except BadMatch as exc:
            context["error"] = str(exc)
        else:
            before = request.GET.get("before", "")
            context["found"] = records_matching(
                organization=request.organization,
                connector=connector,
                field=field,
                value=value,
                limit=PAGE,
                before=int(before) if before.isdigit() else None,
            )
    return render(request, "pipelines/record_search.html", context)


@organization_required
def record_detail(request: HttpRequest, connector_id, sequence: int) -> HttpResponse:
    connector = _source_or_404(request, connector_id)
    record = record_get(organization=request.organization, connector=connector, sequence=sequence)
    if record is None:
        raise Http404("No such record (it may have been purged).")
    context = {
        "connector": connector,
        "record": record,
        "record_json": orjson.dumps(record.data, option=orjson.OPT_INDENT_2).decode()[:20_000],
        "traces": record_trace(record=record),
    }
    return render(request, "pipelines/record.html", context)
