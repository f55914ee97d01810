"""Writes of the pipelines app: pipelines, and creating, enqueueing and cancelling runs.

The delivery itself is in ``pipelines.delivery``; the scheduler in ``pipelines.scheduler``.
Every function that creates a run enqueues it with ``transaction.on_commit``: if the broker
is down, or the process dies between the commit and the send, the run stays ``queued`` with
``enqueued_at`` empty and the scheduler's sweep enqueues it (the database is the truth).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from connectors.models import Connector, Direction, SourceState
from connectors.schema import FieldSpec
from osmos.tenancy.models import Organization
from pipelines import cron, limits
from pipelines.mapping import default_mapping, mapping_errors
from pipelines.models import (
    ACTIVE_RUN_STATES,
    FINISHED_RUN_STATES,
    Pipeline,
    RecordFailure,
    Run,
    RunState,
    SyncMode,
    Trigger,
)
from pipelines.queue import run_enqueue

logger = logging.getLogger(__name__)

_UNSET: Any = object()


class PipelineConflict(Exception):
    """A change refused because of the current state (the API answers 409)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# --- pipelines ----------------------------------------------------------------------------------


def _connector(*, organization: Organization, connector_id: Any, field: str) -> Connector:
    """The organization's connector, or a field error that says nothing about other tenants."""
    try:
        uuid.UUID(str(connector_id))
        return (
            Connector.objects.for_organization(organization)
            .prefetch_related("fields")
            .get(pk=connector_id)
        )
    except (ValueError, Connector.DoesNotExist):
        raise ValidationError({field: ["No such connector."]}) from None


def _check_ends(*, source: Connector, destination: Connector) -> None:
    errors: dict[str, list[str]] = {}
    if source.direction != Direction.SOURCE:
        errors["source"] = ["This connector is not a source."]
    elif source.source.state != SourceState.ACTIVE:
        errors["source"] = [
            "This source is not active yet: it needs its samples and to be saved first."
        ]
    if destination.direction != Direction.DESTINATION:
        errors["destination"] = ["This connector is not a destination."]
    if errors:
        raise ValidationError(errors)


def _specs(connector: Connector) -> list[FieldSpec]:
    return [FieldSpec(*spec) for spec in connector.field_specs()]


def _validated_mapping(*, mapping: Any, source: Connector, destination: Connector) -> dict:
    source_fields, destination_fields = _specs(source), _specs(destination)
    if mapping is None:
        mapping = default_mapping(
            source_fields=source_fields, destination_fields=destination_fields
        )
    errors = mapping_errors(
        mapping=mapping, source_fields=source_fields, destination_fields=destination_fields
    )
    if errors:
        raise ValidationError(
            {"mapping": [f"{e.field}: {e.message}" if e.field else e.message for e in errors]}
        )
    return dict(mapping)


def _schedule_fields(schedule: Mapping[str, Any] | None) -> tuple[str, str]:
    """``(cron, timezone)`` from the API's schedule object; ``("", "")`` = manual only."""
    if schedule is None:
        return "", ""
    if not isinstance(schedule, Mapping):
        raise ValidationError({"schedule": ["Give null or an object with cron and timezone."]})
    cron_expr = schedule.get("cron")
    zone = schedule.get("timezone") or "UTC"
    try:
        cron.check_schedule(cron=cron_expr, timezone=zone)
    except cron.InvalidSchedule as exc:
        raise ValidationError({"schedule": [f"{exc.field}: {exc.message}"]}) from None
    return cron.normalize_cron(cron_expr), zone


def _next_run_at(pipeline: Pipeline, *, now: datetime | None = None) -> datetime | None:
    if not pipeline.enabled or not pipeline.schedule_cron:
        return None
    return cron.next_fire_time(
        cron=pipeline.schedule_cron,
        timezone=pipeline.schedule_timezone,
        after=now or timezone.now(),
    )


def _save_named(pipeline: Pipeline) -> None:
    try:
        with transaction.atomic():
            pipeline.save()
    except IntegrityError:
        raise ValidationError({"name": ["A pipeline with this name already exists."]}) from None


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({"name": ["A pipeline needs a name."]})
    if len(name.strip()) > 200:
        raise ValidationError({"name": ["At most 200 characters."]})
    return name.strip()


@transaction.atomic
def pipeline_create(
    *,
    organization: Organization,
    name: str,
    source_id: Any,
    destination_id: Any,
    mapping: Mapping[str, str] | None = None,
    schedule: Mapping[str, Any] | None = None,
    sync_mode: str = SyncMode.INCREMENTAL,
    enabled: bool = True,
) -> Pipeline:
    """Create a pipeline from an active source to a destination of ``organization``.

    ``mapping`` None means "same names". Raises ValidationError keyed by field: unknown
    connector (also one of another organization: "No such connector."), wrong direction,
    inactive source, mapping errors (see ``pipelines.mapping``), bad schedule, duplicate name.
    """
    name = _clean_name(name)
    source = _connector(organization=organization, connector_id=source_id, field="source")
    destination = _connector(
        organization=organization, connector_id=destination_id, field="destination"
    )
    _check_ends(source=source, destination=destination)
    if sync_mode not in SyncMode.values:
        raise ValidationError({"sync_mode": [f"Choose one of {', '.join(SyncMode.values)}."]})
    schedule_cron, schedule_timezone = _schedule_fields(schedule)
    pipeline = Pipeline(
        organization=organization,
        name=name,
        source=source,
        destination=destination,
        mapping=_validated_mapping(mapping=mapping, source=source, destination=destination),
        schedule_cron=schedule_cron,
        schedule_timezone=schedule_timezone,
        sync_mode=sync_mode,
        enabled=bool(enabled),
    )
    pipeline.next_run_at = _next_run_at(pipeline)
    limits.check_minutely_cap(pipeline=pipeline)
    _save_named(pipeline)
    return pipeline


@transaction.atomic
def pipeline_update(
    *,
    pipeline: Pipeline,
    name: str = _UNSET,
    mapping: Mapping[str, str] | None = _UNSET,
    schedule: Mapping[str, Any] | None = _UNSET,
    sync_mode: str = _UNSET,
    enabled: bool = _UNSET,
) -> Pipeline:
    """Change the given fields (the others stay); same validation as ``pipeline_create``.

    The source and destination of a pipeline cannot change (its cursor and its runs refer to
    that source): create another pipeline instead. A changed schedule or ``enabled`` computes
    ``next_run_at`` again; the cursor is kept.
    """
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    if name is not _UNSET:
        pipeline.name = _clean_name(name)
    if mapping is not _UNSET:
        pipeline.mapping = _validated_mapping(
            mapping=mapping, source=pipeline.source, destination=pipeline.destination
        )
    if sync_mode is not _UNSET:
        if sync_mode not in SyncMode.values:
            raise ValidationError({"sync_mode": [f"Choose one of {', '.join(SyncMode.values)}."]})
        pipeline.sync_mode = sync_mode
    reschedule = False
    if schedule is not _UNSET:
        pipeline.schedule_cron, pipeline.schedule_timezone = _schedule_fields(schedule)
        reschedule = True
    if enabled is not _UNSET:
        reschedule = reschedule or bool(enabled) != pipeline.enabled
        pipeline.enabled = bool(enabled)
    if reschedule:
        pipeline.next_run_at = _next_run_at(pipeline)
        limits.check_minutely_cap(pipeline=pipeline)
    _save_named(pipeline)
    return pipeline


@transaction.atomic
def pipeline_delete(*, pipeline: Pipeline) -> None:
    """Delete a pipeline and its finished runs. Raises PipelineConflict while a run is active."""
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    active = _unfinished_runs(pipeline).exists()
    if active:
        raise PipelineConflict(
            "This pipeline has a run in progress; cancel it or wait until it ends."
        )
    pipeline.delete()


def _unfinished_runs(pipeline: Pipeline):
    # A cancelled run is unfinished until its records are accounted for (finished_at set).
    return Run.objects.filter(pipeline=pipeline, finished_at__isnull=True)


# --- runs ---------------------------------------------------------------------------------------


def run_create(*, pipeline: Pipeline, trigger: str) -> Run:
    """Create a queued run of ``pipeline`` and enqueue it when the transaction commits.

    Incremental mode covers ``cursor < sequence <= last_sequence`` and moves the cursor to
    ``last_sequence`` in the same transaction, so two runs never share a record and records
    arriving later go to the next run. Full mode covers ``0 < sequence <= last_sequence``.
    ``last_sequence`` is only advanced by committed ingest transactions, so every record in
    the range is already committed.
    """
    with transaction.atomic():
        locked = (
            # of=self: PostgreSQL refuses FOR UPDATE on the nullable side of the outer join
            # to the source's settings (a reverse one-to-one).
            Pipeline.objects.select_for_update(of=("self",))
            .select_related("source__source")
            .get(pk=pipeline.pk)
        )
        last_sequence = locked.source.source.last_sequence
        start = locked.cursor if locked.sync_mode == SyncMode.INCREMENTAL else 0
        start = min(start, last_sequence)
        run = Run.objects.create(
            organization_id=locked.organization_id,
            pipeline=locked,
            trigger=trigger,
            sequence_from=start,
            sequence_to=last_sequence,
            mapping=locked.mapping,
        )
        if locked.sync_mode == SyncMode.INCREMENTAL and last_sequence > locked.cursor:
            Pipeline.objects.filter(pk=locked.pk).update(cursor=last_sequence)
        transaction.on_commit(lambda: run_enqueue(run_id=run.id))
    return run


def run_retry_failed(*, run: Run) -> Run:
    """A new run (trigger ``retry``) that sends the failed records of ``run`` once more.

    The records are read again from the source and mapped with the pipeline's current
    mapping (a fixed mapping is the usual reason to retry). Raises PipelineConflict when
    ``run`` has not finished, has no failed record, or a retry of it is still in progress.
    """
    with transaction.atomic():
        parent = (
            Run.objects.select_for_update(of=("self",)).select_related("pipeline").get(pk=run.pk)
        )
        if parent.state not in FINISHED_RUN_STATES or parent.finished_at is None:
            raise PipelineConflict("This run has not finished yet.")
        failures = RecordFailure.objects.filter(run=parent)
        if not failures.exists():
            raise PipelineConflict("This run has no failed records.")
        if Run.objects.filter(parent=parent, finished_at__isnull=True).exists():
            # Two retries at once would send every failed record twice.
            raise PipelineConflict("A retry of this run is already in progress.")
        bounds = failures.order_by("sequence").values_list("sequence", flat=True)
        first, last = bounds.first(), bounds.last()
        retry = Run.objects.create(
            organization_id=parent.organization_id,
            pipeline=parent.pipeline,
            trigger=Trigger.RETRY,
            parent=parent,
            sequence_from=first - 1,
            sequence_to=last,
            mapping=parent.pipeline.mapping,
        )
        transaction.on_commit(lambda: run_enqueue(run_id=retry.id))
    return retry


def run_cancel(*, run: Run) -> Run:
    """Cancel a queued, running or waiting run: no further request is sent for it.

    A request already on the wire is still accounted (delivered or failed); the records not
    sent are then recorded as failed ("cancelled"), so they can be retried. The worker that
    holds the run does that accounting; the message enqueued here does it, at once, for a
    run no worker holds (queued, or waiting for its next attempt). Raises PipelineConflict
    when the run has already finished.
    """
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run.pk)
        if locked.state not in ACTIVE_RUN_STATES:
            raise PipelineConflict("This run has already finished.")
        locked.state = RunState.CANCELLED
        locked.save(update_fields=["state"])
        transaction.on_commit(lambda: run_enqueue(run_id=locked.id))
    return locked
