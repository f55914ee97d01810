"""Reads of the pipelines app; every one takes the organization."""

from __future__ import annotations

from django.db.models import QuerySet

from osmos.tenancy.models import Organization
from pipelines.models import ChunkState, Pipeline, RecordFailure, RequestLog, Run, RunChunk


def pipeline_list(*, organization: Organization) -> QuerySet[Pipeline]:
    return Pipeline.objects.for_organization(organization).order_by("name")


def run_list(
    *,
    organization: Organization,
    pipeline_id: str | None = None,
    state: str | None = None,
) -> QuerySet[Run]:
    """The organization's runs, newest first, optionally of one pipeline and in one state."""
    runs = Run.objects.for_organization(organization).order_by("-created_at", "id")
    if pipeline_id:
        runs = runs.filter(pipeline_id=pipeline_id)
    if state:
        runs = runs.filter(state=state)
    return runs


def run_failures(*, organization: Organization, run: Run) -> QuerySet[RecordFailure]:
    """The failed records of ``run`` in sequence order (empty if the run is not theirs)."""
    return RecordFailure.objects.for_organization(organization).filter(run=run).order_by("sequence")


def run_requests(*, organization: Organization, run: Run) -> QuerySet[RequestLog]:
    return RequestLog.objects.for_organization(organization).filter(run=run).order_by("id")


def run_waiting_chunk(*, organization: Organization, run: Run) -> RunChunk | None:
    """The chunk a waiting run is stuck on (the first pending one), or None."""
    return (
        RunChunk.objects.for_organization(organization)
        .filter(run=run, state=ChunkState.PENDING)
        .order_by("index")
        .first()
    )
