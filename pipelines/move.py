"""The guided "move my pipelines to the copy" page (SPEC §3.4), on a duplicated connector.

A connector duplicated with a new schema remembers its original (``duplicated_from``). This
page lists the original's pipelines (those using it on the copy's side: as source for a
source copy, as destination for a destination copy), says for each which mapping it would
take, and points the chosen ones at the copy through ``services.pipeline_update`` (which
checks everything again), one pipeline at a time, with each pipeline's result.

The mapping kept is the pipeline's own when it fits the new schemas, else "same names"
when that fits; otherwise the pipeline cannot move here (its problems are listed) and the
API's PATCH with an explicit ``mapping`` is the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from connectors import selectors as connector_selectors
from connectors.models import Connector, SourceState
from connectors.schema import FieldSpec
from osmos.errors import InputError, InvalidInput
from osmos.tenancy.scope import tenant_object_or_404
from osmos.tenancy.views import organization_required, require_manager
from pipelines import selectors, services
from pipelines.mapping import default_mapping, mapping_errors
from pipelines.models import Pipeline


@dataclass
class MovePlan:
    pipeline: Pipeline
    mapping: dict[str, str] | None = None  # None: cannot move
    note: str = ""
    problems: list[str] = field(default_factory=list)
    result: str = ""  # after a POST: "moved", "failed" or "" (not chosen)
    result_messages: list[str] = field(default_factory=list)


def _specs(connector: Connector) -> list[FieldSpec]:
    return [FieldSpec(*spec) for spec in connector.field_specs()]


def _message(error: InputError) -> str:
    return f"{error.field}: {error.message}" if error.field else error.message


def plan_move(pipeline: Pipeline, copy: Connector) -> MovePlan:
    """Which mapping ``pipeline`` would take if pointed at ``copy``, or why it cannot move."""
    plan = MovePlan(pipeline=pipeline)
    source = copy if copy.is_source else pipeline.source
    destination = pipeline.destination if copy.is_source else copy
    if copy.is_source and copy.source.state != SourceState.ACTIVE:
        plan.problems.append(
            "The copy is not active yet: it needs its samples and to be saved first."
        )
        return plan
    kept = mapping_errors(
        mapping=pipeline.mapping,
        source_fields=_specs(source),
        destination_fields=_specs(destination),
    )
    if not kept:
        plan.mapping, plan.note = dict(pipeline.mapping), "keeps its mapping"
        return plan
    same_names = default_mapping(
        source_fields=_specs(source), destination_fields=_specs(destination)
    )
    if not mapping_errors(
        mapping=same_names, source_fields=_specs(source), destination_fields=_specs(destination)
    ):
        plan.mapping = same_names
        plan.note = "its mapping does not fit the new schema; it takes the same-name mapping"
        plan.problems = [_message(error) for error in kept]
        return plan
    plan.problems = [_message(error) for error in kept]
    return plan


def _copy_and_original(request: HttpRequest, connector_id) -> tuple[Connector, Connector]:
    connectors = connector_selectors.connector_list(organization=request.organization)
    copy = tenant_object_or_404(connectors, request.organization, pk=connector_id)
    original = copy.duplicated_from
    if original is None or original.organization_id != request.organization.pk:
        raise Http404("This connector is not a copy of another connector.")
    return copy, original


def _pipelines_of(request: HttpRequest, original: Connector) -> list[Pipeline]:
    side = "source" if original.is_source else "destination"
    pipelines = selectors.pipeline_list(organization=request.organization)
    return list(
        pipelines.filter(**{side: original}).select_related(
            "source__source", "destination__destination"
        )
    )


def _move(plan: MovePlan, copy: Connector) -> None:
    end = {"source_id": copy.pk} if copy.is_source else {"destination_id": copy.pk}
    try:
        services.pipeline_update(pipeline=plan.pipeline, mapping=plan.mapping, **end)
    except InvalidInput as error:
        plan.result, plan.result_messages = "failed", [_message(e) for e in error.errors]
    except services.PipelineConflict as error:
        plan.result, plan.result_messages = "failed", [error.message]
    else:
        plan.result = "moved"
        if copy.is_source:
            plan.result_messages = ["Its next run starts from the first record of the copy."]


@organization_required
@require_http_methods(["GET", "POST"])
def move_pipelines(request: HttpRequest, connector_id) -> HttpResponse:
    """GET: the original's pipelines and what moving each would do. POST: move the chosen."""
    require_manager(request)
    copy, original = _copy_and_original(request, connector_id)
    plans = [plan_move(pipeline, copy) for pipeline in _pipelines_of(request, original)]
    if request.method == "POST":
        chosen = set(request.POST.getlist("pipeline"))
        for plan in plans:
            if str(plan.pipeline.pk) in chosen and plan.mapping is not None:
                _move(plan, copy)
        moved = sum(plan.result == "moved" for plan in plans)
        failed = sum(plan.result == "failed" for plan in plans)
        if moved:
            messages.success(request, f"{moved} pipeline{'s' * (moved != 1)} moved to {copy}.")
        if failed:
            messages.error(request, f"{failed} pipeline{'s' * (failed != 1)} could not move.")
    context = {
        "copy": copy,
        "original": original,
        "plans": plans,
        "posted": request.method == "POST",
    }
    return render(request, "pipelines/move.html", context)
