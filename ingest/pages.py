"""The source debugger's panel on a source's page: its refused requests, live (htmx)."""

from __future__ import annotations

from datetime import timedelta

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from connectors.selectors import connector_get
from ingest.models import IngestRejection
from ingest.rejections import rejection_counts
from osmos.tenancy.views import organization_required

SHOWN = 20


@organization_required
def source_rejections(request: HttpRequest, connector_id) -> HttpResponse:
    connector = connector_get(organization=request.organization, connector_id=connector_id)
    if connector is None or not connector.is_source:
        raise Http404("No such source.")
    rejections = IngestRejection.objects.filter(
        organization=request.organization, connector=connector
    )[:SHOWN]
    counts = rejection_counts(
        organization=request.organization,
        connector_id=connector.pk,
        since=timezone.now() - timedelta(hours=24),
    )
    context = {"connector": connector, "rejections": rejections, "counts": sorted(counts.items())}
    return render(request, "ingest/_rejections.html", context)
