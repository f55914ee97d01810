"""Pipeline pages: the list, the builder (new and edit), the pipeline page with its runs, and
the run page with its failed records.

Reads go through the selectors with the current organization (another organization's
pipeline or run is a 404); writes go through ``pipelines.services``. Members may view, run
a pipeline and retry failed records (SPEC §2); everything else needs an owner or admin.
"""

from __future__ import annotations

from zoneinfo import available_timezones

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from connectors import selectors as connector_selectors
from connectors.forms import json_cell
from connectors.models import Connector, Direction, SourceState
from ingest import selectors as ingest_selectors
from osmos.errors import InvalidInput
from osmos.tenancy.scope import tenant_object_or_404
from osmos.tenancy.views import delete_confirmed, organization_required, require_manager
from pipelines import cron, selectors, services
from pipelines.forms import (
    CUSTOM,
    MANUAL,
    SCHEDULE_PRESETS,
    PipelineDraft,
    next_run_times,
)
from pipelines.inspector import inspector_page
from pipelines.mapping import map_record
from pipelines.models import ACTIVE_RUN_STATES, Pipeline, Run, RunState, Trigger

PAGE_SIZE = 25
PREVIEW_RECORDS = 5


def _pipeline_or_404(request: HttpRequest, pipeline_id) -> Pipeline:
    pipelines = selectors.pipeline_list(organization=request.organization)
    return tenant_object_or_404(pipelines, request.organization, pk=pipeline_id)


def _run_or_404(request: HttpRequest, run_id) -> Run:
    runs = selectors.run_list(organization=request.organization)
    return tenant_object_or_404(runs, request.organization, pk=run_id)


@organization_required
@require_GET
def pipeline_list(request: HttpRequest) -> HttpResponse:
    pipelines = selectors.pipeline_list(organization=request.organization).select_related(
        "source", "destination"
    )
    page = Paginator(pipelines, PAGE_SIZE).get_page(request.GET.get("page"))
    runs = selectors.run_list(organization=request.organization)
    rows = [(pipeline, runs.filter(pipeline=pipeline).first()) for pipeline in page]
    return render(request, "pipelines/list.html", {"page": page, "rows": rows})


def _ends(request: HttpRequest) -> tuple[list[Connector], list[Connector]]:
    connectors = connector_selectors.connector_list(organization=request.organization)
    sources = [c for c in connectors if c.is_source and c.source.state == SourceState.ACTIVE]
    destinations = [c for c in connectors if c.direction == Direction.DESTINATION]
    return sources, destinations


def _connector_choice(request: HttpRequest, value: str | None, direction: str) -> Connector | None:
    connector = connector_selectors.connector_get(
        organization=request.organization, connector_id=value or ""
    )
    if connector is None or connector.direction != direction:
        return None
    return connector


def _builder_context(request: HttpRequest, draft: PipelineDraft) -> dict:
    return {
        "draft": draft,
        "source_fields": draft.source.field_specs(),
        "presets": SCHEDULE_PRESETS,
        "manual": MANUAL,
        "custom": CUSTOM,
        "timezones": sorted(available_timezones() | {"UTC"}),
        "preview": _preview(request, draft),
        "next_runs": _next_runs(draft),
    }


def _preview(request: HttpRequest, draft: PipelineDraft) -> dict:
    """The first sample records of the source as the destination would receive them."""
    samples = ingest_selectors.samples_of(organization=request.organization, connector=draft.source)
    pairs = list(draft.mapping().items())
    columns = [row.destination.name for row in draft.rows]
    records = [map_record(record.data, pairs) for record in samples[:PREVIEW_RECORDS]]
    rows = [[json_cell(r[c]) if c in r else "—" for c in columns] for r in records]
    return {"columns": columns, "rows": rows}


def _next_runs(draft: PipelineDraft) -> dict:
    if draft.schedule == MANUAL:
        return {"manual": True, "times": [], "error": ""}
    try:
        times = next_run_times(
            cron_expression=draft.cron, timezone=draft.timezone, after=timezone.now()
        )
    except cron.InvalidSchedule as error:
        return {"manual": False, "times": [], "error": error.message}
    return {"manual": False, "times": times, "error": "", "zone": draft.timezone}


@organization_required
@require_http_methods(["GET", "POST"])
def pipeline_new(request: HttpRequest) -> HttpResponse:
    """Step 1 picks the two connectors (GET); step 2 is the builder, posted to create."""
    require_manager(request)
    params = request.POST if request.method == "POST" else request.GET
    source = _connector_choice(request, params.get("source"), Direction.SOURCE)
    destination = _connector_choice(request, params.get("destination"), Direction.DESTINATION)
    if source is None or destination is None:
        sources, destinations = _ends(request)
        context = {
            "sources": sources,
            "destinations": destinations,
            "chosen": params,
            "invalid": bool(params.get("source") or params.get("destination")),
        }
        return render(request, "pipelines/pick.html", context)
    if request.method == "GET":
        return _builder_page(request, PipelineDraft.new(source=source, destination=destination))
    draft = PipelineDraft.from_post(request.POST, source=source, destination=destination)
    try:
        pipeline = services.pipeline_create(
            organization=request.organization,
            source_id=source.pk,
            destination_id=destination.pk,
            **draft.service_arguments(),
        )
    except InvalidInput as error:
        draft.attach_errors(error.errors)
        return _builder_page(request, draft, status=400)
    messages.success(request, f"Pipeline “{pipeline.name}” created.")
    return redirect("pipelines:detail", pipeline_id=pipeline.pk)


@organization_required
@require_http_methods(["GET", "POST"])
def pipeline_edit(request: HttpRequest, pipeline_id) -> HttpResponse:
    require_manager(request)
    pipeline = _pipeline_or_404(request, pipeline_id)
    if request.method == "GET":
        return _builder_page(request, PipelineDraft.of(pipeline), pipeline=pipeline)
    draft = PipelineDraft.from_post(
        request.POST, source=pipeline.source, destination=pipeline.destination
    )
    try:
        services.pipeline_update(pipeline=pipeline, **draft.service_arguments())
    except InvalidInput as error:
        draft.attach_errors(error.errors)
        return _builder_page(request, draft, pipeline=pipeline, status=400)
    messages.success(request, "Pipeline saved.")
    return redirect("pipelines:detail", pipeline_id=pipeline.pk)


def _builder_page(
    request: HttpRequest,
    draft: PipelineDraft,
    *,
    pipeline: Pipeline | None = None,
    status: int = 200,
) -> HttpResponse:
    """The builder, of a new pipeline or of ``pipeline`` when it edits one."""
    context = _builder_context(request, draft)
    if pipeline is not None:
        context["pipeline"] = pipeline
    return render(request, "pipelines/builder.html", context, status=status)


def _draft_for_preview(request: HttpRequest) -> PipelineDraft:
    source = _connector_choice(request, request.GET.get("source"), Direction.SOURCE)
    destination = _connector_choice(request, request.GET.get("destination"), Direction.DESTINATION)
    if source is None or destination is None:
        raise Http404("No such connector.")
    return PipelineDraft.from_post(request.GET, source=source, destination=destination)


@organization_required
@require_GET
def builder_preview(request: HttpRequest) -> HttpResponse:
    """The builder's live parts (mapped preview, next run times), refreshed as it changes."""
    draft = _draft_for_preview(request)
    return render(request, "pipelines/_builder_live.html", _builder_context(request, draft))


@organization_required
@require_GET
def pipeline_detail(request: HttpRequest, pipeline_id) -> HttpResponse:
    pipeline = _pipeline_or_404(request, pipeline_id)
    runs = selectors.run_list(organization=request.organization, pipeline_id=pipeline.pk)
    page = Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page"))
    draft = PipelineDraft.of(pipeline)
    return render(
        request,
        "pipelines/detail.html",
        {
            "pipeline": pipeline,
            "page": page,
            "draft": draft,
            "next_runs": _next_runs(draft),
            "has_active_run": any(run.state in ACTIVE_RUN_STATES for run in page),
        },
    )


@organization_required
@require_POST
def pipeline_run(request: HttpRequest, pipeline_id) -> HttpResponse:
    """Run now: open to members (SPEC §2: members can trigger runs)."""
    pipeline = _pipeline_or_404(request, pipeline_id)
    run = services.run_create(pipeline=pipeline, trigger=Trigger.MANUAL)
    messages.success(request, "Run queued.")
    return redirect("pipelines:run", run_id=run.pk)


@organization_required
@require_http_methods(["GET", "POST"])
def pipeline_delete(request: HttpRequest, pipeline_id) -> HttpResponse:
    require_manager(request)
    pipeline = _pipeline_or_404(request, pipeline_id)
    if request.method == "POST":
        return delete_confirmed(
            request,
            lambda: services.pipeline_delete(pipeline=pipeline),
            refusal=services.PipelineConflict,
            deleted=f"Pipeline “{pipeline.name}” deleted.",
            back_to=reverse("pipelines:detail", kwargs={"pipeline_id": pipeline.pk}),
            done_to=reverse("pipelines:list"),
        )
    return render(request, "pipelines/delete.html", {"pipeline": pipeline})


def _run_context(request: HttpRequest, run: Run) -> dict:
    done = run.records_delivered + run.records_failed
    percent = round(100 * done / run.records_total) if run.records_total else 0
    duration = None
    if run.started_at and run.finished_at:
        duration = (run.finished_at - run.started_at).total_seconds()
    waiting_chunk = None
    if run.state == RunState.WAITING:
        waiting_chunk = selectors.run_waiting_chunk(organization=request.organization, run=run)
    return {
        "run": run,
        "duration": duration,
        "pipeline": run.pipeline,
        "percent": percent,
        "active": run.state in ACTIVE_RUN_STATES,
        "waiting_chunk": waiting_chunk,
        "attempts_allowed": len(settings.DELIVERY_RETRY_SCHEDULE) + 1,
        "csv_url": reverse("run-failures", kwargs={"pk": run.pk}) + "?format=csv",
    }


@organization_required
@require_GET
def run_detail(request: HttpRequest, run_id) -> HttpResponse:
    """The run, and one tab: its failed records (default) or its requests (``?tab=requests``,
    keyset pages ``&after=<id>``: the request inspector)."""
    run = _run_or_404(request, run_id)
    context = _run_context(request, run)
    context["tab"] = "requests" if request.GET.get("tab") == "requests" else "failures"
    failures = selectors.run_failures(organization=request.organization, run=run)
    if context["tab"] == "requests":
        context.update(
            inspector_page(
                run=run,
                attempts=selectors.run_requests(organization=request.organization, run=run),
                after=request.GET.get("after"),
            )
        )
        failures = failures.none()
    page = Paginator(failures, PAGE_SIZE).get_page(request.GET.get("page"))
    context["failures"] = page
    context["failure_rows"] = [(failure, json_cell(failure.record)) for failure in page]
    context["retries"] = selectors.run_list(organization=request.organization).filter(parent=run)
    return render(request, "pipelines/run.html", context)


@organization_required
@require_GET
def run_status(request: HttpRequest, run_id) -> HttpResponse:
    """The run's progress block, polled while the run is queued or running."""
    run = _run_or_404(request, run_id)
    response = render(request, "pipelines/_run_status.html", _run_context(request, run))
    if run.state not in ACTIVE_RUN_STATES:
        # The failures table and buttons depend on the final state: reload the page once.
        response["HX-Refresh"] = "true"
    return response


@organization_required
@require_POST
def run_retry(request: HttpRequest, run_id) -> HttpResponse:
    """Retry failed records: open to members, like running a pipeline."""
    run = _run_or_404(request, run_id)
    try:
        retry = services.run_retry_failed(run=run)
    except services.PipelineConflict as error:
        messages.error(request, error.message)
        return redirect("pipelines:run", run_id=run.pk)
    messages.success(request, "The failed records are being sent again.")
    return redirect("pipelines:run", run_id=retry.pk)


@organization_required
@require_POST
def run_cancel(request: HttpRequest, run_id) -> HttpResponse:
    require_manager(request)
    run = _run_or_404(request, run_id)
    try:
        services.run_cancel(run=run)
    except services.PipelineConflict as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Run cancelled: no further request will be sent.")
    return redirect("pipelines:run", run_id=run.pk)
