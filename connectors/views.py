"""Connector pages: the list, the new-connector wizard, the source and destination pages.

Views stay thin: they read through ``connectors.selectors`` / ``ingest.selectors`` with the
current organization (another organization's connector is a 404), write through the services,
and show the services' errors next to the fields. Writes need an owner or admin.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from connectors import selectors, services
from connectors.forms import (
    DIRECTION_CHOICES,
    DIRECTION_HELP,
    FIELD_TYPES,
    METHODS,
    SYSTEM_CHOICES,
    WRITE_MODES,
    ConnectorDraft,
    ConnectorFilterForm,
    HeaderRow,
    NameForm,
    SchemaRow,
    curl_example_body,
    json_cell,
)
from connectors.health import NotPaused, destination_resume, health_of
from connectors.models import Connector, Direction
from ingest import selectors as ingest_selectors
from ingest import services as ingest_services
from osmos.tenancy.views import organization_required, require_manager
from pipelines import probe
from pipelines import selectors as pipeline_selectors

PAGE_SIZE = 25
# Plain ingest tokens exist only in the answer that issues them: we keep one in the session
# until the next page of that connector has shown it, then forget it.
_TOKEN_SESSION_KEY = "ingest_token:{}"


def _connector_or_404(request: HttpRequest, connector_id) -> Connector:
    connector = selectors.connector_get(
        organization=request.organization, connector_id=connector_id
    )
    if connector is None:
        raise Http404("No such connector.")
    return connector


def _remember_token(request: HttpRequest, result: services.ConnectorWithToken) -> None:
    if result.ingest_token:
        request.session[_TOKEN_SESSION_KEY.format(result.connector.pk)] = result.ingest_token


def _pipelines_by_connector(request: HttpRequest) -> dict:
    """connector id -> names of the pipelines using it, in one query."""
    using: dict = {}
    rows = pipeline_selectors.pipeline_list(organization=request.organization).values_list(
        "name", "source_id", "destination_id"
    )
    for name, source_id, destination_id in rows:
        using.setdefault(source_id, []).append(name)
        using.setdefault(destination_id, []).append(name)
    return using


@organization_required
@require_GET
def connector_list(request: HttpRequest) -> HttpResponse:
    form = ConnectorFilterForm(request.GET or None)
    search, direction = "", None
    if form.is_valid():
        search = form.cleaned_data["q"]
        direction = form.cleaned_data["direction"] or None
    connectors = selectors.connector_list(
        organization=request.organization, direction=direction, search=search
    )
    page = Paginator(connectors, PAGE_SIZE).get_page(request.GET.get("page"))
    using = _pipelines_by_connector(request)
    rows = [(connector, using.get(connector.pk, [])) for connector in page]
    return render(
        request,
        "connectors/list.html",
        {
            "form": form,
            "page": page,
            "rows": rows,
            "filtered": bool(search or direction),
            "samples_required": settings.INGEST_SAMPLES_REQUIRED,
        },
    )


def _wizard_context(draft: ConnectorDraft) -> dict:
    return {
        "draft": draft,
        "systems": SYSTEM_CHOICES,
        "directions": [(value, label, DIRECTION_HELP[value]) for value, label in DIRECTION_CHOICES],
        "field_types": FIELD_TYPES,
        "methods": METHODS,
        "write_modes": WRITE_MODES,
    }


@organization_required
@require_http_methods(["GET", "POST"])
def connector_new(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    if request.method == "GET":
        direction = request.GET.get("direction", "")
        draft = ConnectorDraft.initial(direction=direction if direction in Direction.values else "")
        return render(request, "connectors/new.html", _wizard_context(draft))
    draft = ConnectorDraft.from_post(request.POST)
    if _added_a_row(request, draft):
        return render(request, "connectors/new.html", _wizard_context(draft))
    if draft.values["system"] != "http_api":
        draft.add_error("system", "Choose the system of the connector.")
    if not draft.has_errors:
        is_destination = draft.direction == Direction.DESTINATION
        try:
            result = services.connector_create(
                organization=request.organization,
                name=draft.name,
                direction=draft.direction,
                fields=draft.fields(),
                destination=draft.destination() if is_destination else None,
            )
        except services.ConnectorError as error:
            draft.attach_errors(error.errors)
        else:
            _remember_token(request, result)
            messages.success(request, f"Connector “{result.connector.name}” created.")
            return redirect("connectors:detail", connector_id=result.connector.pk)
    return render(request, "connectors/new.html", _wizard_context(draft), status=400)


def _added_a_row(request: HttpRequest, draft: ConnectorDraft) -> bool:
    """The "add a row" buttons of the page without JavaScript: one more blank row, no save."""
    if "add_field" in request.POST:
        draft.schema.append(SchemaRow(key=f"f{len(draft.schema)}"))
        return True
    if "add_header" in request.POST:
        draft.headers.append(HeaderRow())
        return True
    return False


def _source_context(request: HttpRequest, connector: Connector) -> dict:
    status = ingest_selectors.source_status(organization=request.organization, connector=connector)
    samples = list(
        ingest_selectors.samples_of(organization=request.organization, connector=connector)
    )
    columns = [name for name, _type, _nullable in connector.field_specs()]
    percent = min(100, round(100 * status.sample_count / status.samples_required))
    return {
        "connector": connector,
        "status": status,
        "percent": percent,
        "samples": samples,
        "sample_rows": [[json_cell(record.data.get(c)) for c in columns] for record in samples],
        "columns": columns,
        "can_save": status.state != "active" and status.samples_missing == 0,
    }


@organization_required
@require_GET
def connector_detail(request: HttpRequest, connector_id) -> HttpResponse:
    connector = _connector_or_404(request, connector_id)
    pipelines = services.pipelines_using(connector=connector)
    if connector.is_source:
        token = request.session.pop(_TOKEN_SESSION_KEY.format(connector.pk), None)
        context = _source_context(request, connector)
        context.update(
            pipelines=pipelines,
            ingest_url=selectors.ingest_url(token=token, request=request) if token else None,
            example_body=curl_example_body(connector.field_specs()),
        )
        return render(request, "connectors/source.html", context)
    return _destination_page(request, connector, pipelines=pipelines)


def _destination_page(
    request: HttpRequest, connector: Connector, *, pipelines: list[str], test_result=None
) -> HttpResponse:
    return render(
        request,
        "connectors/destination.html",
        {
            "connector": connector,
            "pipelines": pipelines,
            "headers": connector.destination.masked_headers(),
            "test_available": True,
            "test_result": test_result,
            "health": health_of(connector),
        },
    )


@organization_required
@require_GET
def destination_health(request: HttpRequest, connector_id) -> HttpResponse:
    """The health block of a destination page, polled (SPEC §5.2)."""
    connector = _connector_or_404(request, connector_id)
    if connector.is_source:
        raise Http404("Only a destination has a health.")
    context = {"connector": connector, "health": health_of(connector)}
    return render(request, "connectors/_health.html", context)


@organization_required
@require_POST
def destination_resume_view(request: HttpRequest, connector_id) -> HttpResponse:
    """Resume a paused destination: its waiting runs go on at once."""
    require_manager(request)
    connector = _connector_or_404(request, connector_id)
    if connector.is_source:
        raise Http404("Only a destination can be resumed.")
    try:
        destination_resume(connector=connector)
    except NotPaused as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Destination resumed: its waiting runs go on now.")
    return redirect("connectors:detail", connector_id=connector.pk)


@organization_required
@require_POST
def destination_test(request: HttpRequest, connector_id) -> HttpResponse:
    """Send the made-up sample records once and show the answer on the destination page."""
    require_manager(request)
    connector = _connector_or_404(request, connector_id)
    if connector.is_source:
        raise Http404("Only a destination can be tested.")
    result = probe.destination_test(connector=connector)
    return _destination_page(
        request,
        connector,
        pipelines=services.pipelines_using(connector=connector),
        test_result=result,
    )


@organization_required
@require_GET
def source_progress(request: HttpRequest, connector_id) -> HttpResponse:
    """The sample gate block of a source page, polled while samples arrive."""
    connector = _connector_or_404(request, connector_id)
    if not connector.is_source:
        raise Http404("Only a source has samples.")
    return render(request, "connectors/_source_progress.html", _source_context(request, connector))


@organization_required
@require_POST
def source_save(request: HttpRequest, connector_id) -> HttpResponse:
    require_manager(request)
    connector = _connector_or_404(request, connector_id)
    try:
        ingest_services.source_save(connector=connector)
    except (ingest_services.SamplesRequired, ingest_services.NotASource) as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"“{connector.name}” is saved and active: pipelines can use it.")
    return redirect("connectors:detail", connector_id=connector.pk)


@organization_required
@require_POST
def source_rotate(request: HttpRequest, connector_id) -> HttpResponse:
    require_manager(request)
    connector = _connector_or_404(request, connector_id)
    try:
        result = services.source_rotate_token(connector=connector)
    except services.ConnectorError as error:
        messages.error(request, str(error.errors[0].message))
    else:
        _remember_token(request, result)
        messages.success(request, "New ingest URL issued. The old URL no longer works.")
    return redirect("connectors:detail", connector_id=connector.pk)


def _draft_of(connector: Connector) -> ConnectorDraft:
    destination = None
    if not connector.is_source:
        settings_ = connector.destination
        destination = {
            "url": settings_.url,
            "method": settings_.method,
            "headers": settings_.masked_headers(),
            "write_mode": settings_.write_mode,
            "batch_size": settings_.batch_size,
            "split_failed_batches": settings_.split_failed_batches,
            "timeout_seconds": settings_.timeout_seconds,
            "rate_limit_per_second": settings_.rate_limit_per_second,
            "max_concurrency": settings_.max_concurrency,
            "response_format": settings_.response_format,
        }
    draft = ConnectorDraft.initial(direction=connector.direction, destination=destination)
    draft.values["name"] = connector.name
    return draft


@organization_required
@require_http_methods(["GET", "POST"])
def connector_edit(request: HttpRequest, connector_id) -> HttpResponse:
    """Name and destination settings; the schema is shown, never editable."""
    require_manager(request)
    connector = _connector_or_404(request, connector_id)
    status = 200
    if request.method == "GET":
        draft = _draft_of(connector)
    else:
        draft = ConnectorDraft.from_post(request.POST)
        if not _added_a_row(request, draft):
            try:
                services.connector_update(
                    connector=connector,
                    name=draft.name,
                    destination=None if connector.is_source else draft.destination(),
                )
            except services.ConnectorError as error:
                draft.attach_errors(error.errors)
                status = 400
            else:
                messages.success(request, "Settings saved.")
                return redirect("connectors:detail", connector_id=connector.pk)
    context = _wizard_context(draft)
    context["connector"] = connector
    return render(request, "connectors/edit.html", context, status=status)


@organization_required
@require_http_methods(["GET", "POST"])
def connector_duplicate(request: HttpRequest, connector_id) -> HttpResponse:
    require_manager(request)
    connector = _connector_or_404(request, connector_id)
    form = NameForm(request.POST or None, initial={"name": f"{connector.name} (copy)"})
    if request.method == "POST" and form.is_valid():
        try:
            result = services.connector_duplicate(
                connector=connector, name=form.cleaned_data["name"]
            )
        except services.ConnectorError as error:
            for item in error.errors:
                form.add_error("name" if item.field == "name" else None, item.message)
        else:
            _remember_token(request, result)
            messages.success(request, f"“{result.connector.name}” created as a copy.")
            return redirect("connectors:detail", connector_id=result.connector.pk)
    status = 400 if form.errors else 200
    return render(
        request, "connectors/duplicate.html", {"connector": connector, "form": form}, status=status
    )


@organization_required
@require_http_methods(["GET", "POST"])
def connector_delete(request: HttpRequest, connector_id) -> HttpResponse:
    require_manager(request)
    connector = _connector_or_404(request, connector_id)
    if request.method == "POST":
        try:
            services.connector_delete(connector=connector)
        except services.ConnectorInUse as error:
            messages.error(request, str(error))
            return redirect("connectors:detail", connector_id=connector.pk)
        messages.success(request, f"Connector “{connector.name}” deleted.")
        return redirect("connectors:list")
    return render(
        request,
        "connectors/delete.html",
        {"connector": connector, "pipelines": services.pipelines_using(connector=connector)},
    )
