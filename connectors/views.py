"""Connector pages: the list, the new-connector wizard, the source and destination pages.

Views stay thin: they read through ``connectors.selectors`` with the current organization
(``tenant_object_or_404``: another organization's connector is a 404), write through the
services, and show the services' errors next to the fields. Writes need an owner or admin.
What ingest (a source's samples, saving it) and pipelines (testing a destination) add to these
pages comes through ``connectors.hooks``: connectors does not import them.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.timezone import now
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from connectors import hooks, selectors, services
from connectors.forms import ConnectorDraft, ConnectorFilterForm, curl_example_body
from connectors.health import NotPaused, destination_resume, health_of
from connectors.models import (
    DEFAULT_VERIFICATION_HEADER,
    Connector,
    Direction,
    VerificationScheme,
)
from connectors.validation import destination_shown
from connectors.wizard import added_a_row, posted_draft, wizard_context
from osmos.errors import DomainError, InvalidInput
from osmos.tenancy.scope import tenant_object_or_404
from osmos.tenancy.views import delete_confirmed, organization_required, require_manager

PAGE_SIZE = 25
# Plain ingest tokens and secrets exist only in the answer that issues them: we keep one in the
# session until the next page of that connector has shown it, then forget it.
_TOKEN_SESSION_KEY = "ingest_token:{}"
_SECRET_SESSION_KEY = "issued_secret:{}"
GRACE_CHOICES = [(0, "none: the old URL stops at once"), (1, "1 hour"), (24, "24 hours"),
                 (72, "3 days"), (168, "7 days")]  # fmt: skip


def _connector_or_404(request: HttpRequest, connector_id) -> Connector:
    connectors = selectors.connector_list(organization=request.organization)
    return tenant_object_or_404(connectors, request.organization, pk=connector_id)


def _destination_or_404(request: HttpRequest, connector_id, why: str) -> Connector:
    """The organization's destination ``connector_id``; a source is a 404 saying ``why``."""
    connector = _connector_or_404(request, connector_id)
    if connector.is_source:
        raise Http404(why)
    return connector


def _source_or_404(request: HttpRequest, connector_id, why: str) -> Connector:
    """The organization's source ``connector_id``; a destination is a 404 saying ``why``."""
    connector = _connector_or_404(request, connector_id)
    if not connector.is_source:
        raise Http404(why)
    return connector


def _remember_token(request: HttpRequest, result: services.ConnectorWithToken) -> None:
    if result.ingest_token:
        request.session[_TOKEN_SESSION_KEY.format(result.connector.pk)] = result.ingest_token
    secret = result.signing_secret or result.verification_secret
    if secret:
        request.session[_SECRET_SESSION_KEY.format(result.connector.pk)] = secret


def show_warnings(request: HttpRequest, result: services.ConnectorWithToken) -> None:
    """What was saved but is worth saying (an unresolvable host), on the next page."""
    for warning in result.warnings:
        messages.warning(request, warning)


def _original_of(request: HttpRequest, connector: Connector) -> dict:
    """The connector this one was duplicated from, and the pipelines that still use it:
    the copy's page offers to move them here (SPEC §3.4)."""
    original = connector.duplicated_from
    if original is None or original.organization_id != request.organization.pk:
        return {}
    return {
        "original": original,
        "original_pipelines": services.pipelines_using(connector=original),
    }


def _issued_secret(request: HttpRequest, connector: Connector) -> str | None:
    """The secret issued by the previous request, shown on this page only."""
    return request.session.pop(_SECRET_SESSION_KEY.format(connector.pk), None)


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
    using = selectors.connector_users(organization=request.organization)
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


@organization_required
@require_http_methods(["GET", "POST"])
def connector_new(request: HttpRequest) -> HttpResponse:
    require_manager(request)
    if request.method == "GET":
        direction = request.GET.get("direction", "")
        draft = ConnectorDraft.initial(direction=direction if direction in Direction.values else "")
        return render(request, "connectors/new.html", wizard_context(draft))
    draft = ConnectorDraft.from_post(request.POST)
    if added_a_row(request, draft):
        return render(request, "connectors/new.html", wizard_context(draft))
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
        except InvalidInput as error:
            draft.attach_errors(error.errors)
        else:
            _remember_token(request, result)
            messages.success(request, f"Connector “{result.connector.name}” created.")
            show_warnings(request, result)
            return redirect("connectors:detail", connector_id=result.connector.pk)
    return render(request, "connectors/new.html", wizard_context(draft), status=400)


@organization_required
@require_GET
def connector_detail(request: HttpRequest, connector_id) -> HttpResponse:
    connector = _connector_or_404(request, connector_id)
    pipelines = services.pipelines_using(connector=connector)
    if connector.is_source:
        token = request.session.pop(_TOKEN_SESSION_KEY.format(connector.pk), None)
        context = hooks.source_page(organization=request.organization, connector=connector)
        source = connector.source
        in_grace = (
            source.previous_token_expires_at
            if source.previous_token_expires_at and source.previous_token_expires_at > now()
            else None
        )
        context.update(
            pipelines=pipelines,
            ingest_url=selectors.ingest_url(token=token, request=request) if token else None,
            example_body=curl_example_body(connector.field_specs()),
            previous_url_expires_at=in_grace,
            grace_choices=GRACE_CHOICES,
            verification=source,
            verification_schemes=VerificationScheme.choices,
            default_verification_header=DEFAULT_VERIFICATION_HEADER,
            issued_secret=_issued_secret(request, connector),
            **_original_of(request, connector),
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
            "issued_secret": _issued_secret(request, connector),
            "signing_previous_until": _previous_until(connector.destination),
            "health": health_of(connector),
            **_original_of(request, connector),
        },
    )


def _previous_until(destination):
    expires = destination.signing_previous_expires_at
    if destination.signing_previous_secret_encrypted and expires and expires > now():
        return expires
    return None


@organization_required
@require_POST
def destination_signing(request: HttpRequest, connector_id) -> HttpResponse:
    """Enable, disable, or rotate the signing secret; a new secret is shown once."""
    require_manager(request)
    connector = _destination_or_404(request, connector_id, "Only a destination signs its requests.")
    action = request.POST.get("action")
    try:
        if action == "rotate":
            result = services.destination_rotate_signing_secret(connector=connector)
            note = "New signing secret issued; the previous one also signs for 24 hours."
        elif action in ("enable", "disable"):
            enabled = action == "enable"
            result = services.connector_update(
                connector=connector, destination={"signing": {"enabled": enabled}}
            )
            note = "Signing enabled." if enabled else "Signing disabled; its secrets are forgotten."
        else:
            raise Http404("Unknown signing action.")
    except InvalidInput as error:
        messages.error(request, error.errors[0].message)
    else:
        _remember_token(request, result)
        messages.success(request, note)
    return redirect("connectors:detail", connector_id=connector.pk)


@organization_required
@require_POST
def source_verification(request: HttpRequest, connector_id) -> HttpResponse:
    """Set how a source verifies its senders; a generated secret is shown once."""
    require_manager(request)
    connector = _source_or_404(request, connector_id, "Only a source verifies its senders.")
    verification = {"scheme": request.POST.get("scheme", "")}
    if request.POST.get("header", "").strip():
        verification["header"] = request.POST["header"].strip()
    if request.POST.get("secret", ""):
        verification["secret"] = request.POST["secret"]
    try:
        result = services.connector_update(
            connector=connector, source={"verification": verification}
        )
    except InvalidInput as error:
        messages.error(request, "; ".join(e.message for e in error.errors))
    else:
        _remember_token(request, result)
        messages.success(request, "Sender verification saved.")
    return redirect("connectors:detail", connector_id=connector.pk)


@organization_required
@require_GET
def destination_health(request: HttpRequest, connector_id) -> HttpResponse:
    """The health block of a destination page, polled (SPEC §5.2)."""
    connector = _destination_or_404(request, connector_id, "Only a destination has a health.")
    context = {"connector": connector, "health": health_of(connector)}
    return render(request, "connectors/_health.html", context)


@organization_required
@require_POST
def destination_resume_view(request: HttpRequest, connector_id) -> HttpResponse:
    """Resume a paused destination: its waiting runs go on at once."""
    require_manager(request)
    connector = _destination_or_404(request, connector_id, "Only a destination can be resumed.")
    try:
        destination_resume(connector=connector)
    except NotPaused as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, "Destination resumed: its waiting runs go on now.")
    return redirect("connectors:detail", connector_id=connector.pk)


@organization_required
@require_POST
def destination_test(request: HttpRequest, connector_id) -> HttpResponse:
    """Send the made-up sample records once and show the answer on the destination page."""
    require_manager(request)
    connector = _destination_or_404(request, connector_id, "Only a destination can be tested.")
    result = hooks.destination_test(connector=connector)
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
    connector = _source_or_404(request, connector_id, "Only a source has samples.")
    context = hooks.source_page(organization=request.organization, connector=connector)
    return render(request, "connectors/_source_progress.html", context)


@organization_required
@require_POST
def source_save(request: HttpRequest, connector_id) -> HttpResponse:
    require_manager(request)
    connector = _connector_or_404(request, connector_id)
    try:
        hooks.source_save(connector=connector)
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, f"“{connector.name}” is saved and active: pipelines can use it.")
    return redirect("connectors:detail", connector_id=connector.pk)


@organization_required
@require_POST
def source_rotate(request: HttpRequest, connector_id) -> HttpResponse:
    require_manager(request)
    connector = _connector_or_404(request, connector_id)
    try:
        grace_hours = int(request.POST.get("grace_hours") or 0)
    except ValueError:
        grace_hours = -1  # refused by the service with its message
    try:
        result = services.source_rotate_token(connector=connector, grace_hours=grace_hours)
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        _remember_token(request, result)
        if grace_hours:
            messages.success(
                request, f"New ingest URL issued. The old URL keeps working for {grace_hours} h."
            )
        else:
            messages.success(request, "New ingest URL issued. The old URL no longer works.")
    return redirect("connectors:detail", connector_id=connector.pk)


def _draft_of(connector: Connector) -> ConnectorDraft:
    destination = None
    if not connector.is_source:
        destination = destination_shown(connector.destination)
    draft = ConnectorDraft.initial(direction=connector.direction, destination=destination)
    draft.values["name"] = connector.name
    return draft


@organization_required
@require_http_methods(["GET", "POST"])
def connector_edit(request: HttpRequest, connector_id) -> HttpResponse:
    """Name and destination settings; the schema is shown, never editable."""
    require_manager(request)
    connector = _connector_or_404(request, connector_id)
    if request.method == "GET":
        draft = _draft_of(connector)
    else:
        draft, result = posted_draft(
            request,
            lambda draft: services.connector_update(
                connector=connector,
                name=draft.name,
                destination=None if connector.is_source else draft.destination(),
            ),
        )
        if result is not None:
            messages.success(request, "Settings saved.")
            show_warnings(request, result)
            return redirect("connectors:detail", connector_id=connector.pk)
    context = wizard_context(draft)
    context["connector"] = connector
    return render(request, "connectors/edit.html", context, status=400 if draft.has_errors else 200)


@organization_required
@require_http_methods(["GET", "POST"])
def connector_delete(request: HttpRequest, connector_id) -> HttpResponse:
    require_manager(request)
    connector = _connector_or_404(request, connector_id)
    if request.method == "POST":
        return delete_confirmed(
            request,
            lambda: services.connector_delete(connector=connector),
            refusal=services.ConnectorInUse,
            deleted=f"Connector “{connector.name}” deleted.",
            back_to=reverse("connectors:detail", kwargs={"connector_id": connector.pk}),
            done_to=reverse("connectors:list"),
        )
    return render(
        request,
        "connectors/delete.html",
        {"connector": connector, "pipelines": services.pipelines_using(connector=connector)},
    )
