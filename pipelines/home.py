"""The organization's start page. It lives here, at the top of the app stack, because it
counts connectors and pipelines (the tenancy app below must not import them)."""

from __future__ import annotations

from django.shortcuts import render

from connectors.selectors import connector_list
from osmos.tenancy.views import organization_required
from pipelines.selectors import pipeline_list, run_list


@organization_required
def home(request):
    """What exists, what to do next, the latest runs."""
    connectors = connector_list(organization=request.organization)
    sources = connectors.filter(direction="source")
    context = {
        "source_count": sources.count(),
        "active_source_count": sources.filter(source__state="active").count(),
        "destination_count": connectors.filter(direction="destination").count(),
        "pipeline_count": pipeline_list(organization=request.organization).count(),
        "recent_runs": run_list(organization=request.organization).select_related("pipeline")[:8],
    }
    return render(request, "home.html", context)
