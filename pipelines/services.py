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

from django.db import IntegrityError, transaction
from django.utils import timezone

from connectors.models import Connector, Direction, SourceState
from connectors.schema import FieldSpec
from osmos.errors import Conflict, InputError, InvalidInput, raise_if_any
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


class PipelineConflict(Conflict):
    """A change refused because of the current state (the API answers 409)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _refuse(field: str, message: str) -> InvalidInput:
    return InvalidInput([InputError(field=field, message=message)])


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
        raise _refuse(field, "No such connector.") from None


def _check_ends(*, source: Connector, destination: Connector) -> None:
    errors: list[InputError] = []
    if source.direction != Direction.SOURCE:
        errors.append(InputError("source", "This connector is not a source."))
    elif source.source.state != SourceState.ACTIVE:
        message = "This source is not active yet: it needs its samples and to be saved first."
        errors.append(InputError("source", message))
    if destination.direction != Direction.DESTINATION:
        errors.append(InputError("destination", "This connector is not a destination."))
    raise_if_any(errors)


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
    # ``mapping.<destination field>``: the API lists them as {field, message} items.
    raise_if_any([InputError(_under("mapping", e.field), e.message, e.index) for e in errors])
    return dict(mapping)


def _under(path: str, key: str | None) -> str:
    return path if key is None else f"{path}.{key}"


def _schedule_fields(schedule: Mapping[str, Any] | None) -> tuple[str, str]:
    """``(cron, timezone)`` from the API's schedule object; ``("", "")`` = manual only."""
    if schedule is None:
        return "", ""
    if not isinstance(schedule, Mapping):
        raise _refuse("schedule", "Give null or an object with cron and timezone.")
    cron_expr = schedule.get("cron")
    zone = schedule.get("timezone") or "UTC"
    try:
        cron.check_schedule(cron=cron_expr, timezone=zone)
    except cron.InvalidSchedule as exc:
        raise _refuse(f"schedule.{exc.field}", exc.message) from None
    return cron.normalize_cron(cron_expr), zone


def _check_sync_mode(sync_mode: Any) -> None:
    if sync_mode not in SyncMode.values:
        raise _refuse("sync_mode", f"Choose one of {', '.join(SyncMode.values)}.")


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
        raise _refuse("name", "A pipeline with this name already exists.") from None


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise _refuse("name", "A pipeline needs a name.")
    if len(name.strip()) > 200:
        raise _refuse("name", "At most 200 characters.")
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

    ``mapping`` None means "same names". Refuses: unknown connector (also one of another
    organization: "No such connector."), wrong direction,
    inactive source, mapping errors (see ``pipelines.mapping``), bad schedule, duplicate name.
    Raises ``InvalidInput`` (``InputError`` items: ``name``, ``source``, ``destination``,
    ``mapping.<destination field>``, ``schedule``/``schedule.cron``/``schedule.timezone``,
    ``sync_mode``); nothing is written.
    """
    name = _clean_name(name)
    source = _connector(organization=organization, connector_id=source_id, field="source")
    destination = _connector(
        organization=organization, connector_id=destination_id, field="destination"
    )
    _check_ends(source=source, destination=destination)
    _check_sync_mode(sync_mode)
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
    source_id: Any = _UNSET,
    destination_id: Any = _UNSET,
    mapping: Mapping[str, str] | None = _UNSET,
    schedule: Mapping[str, Any] | None = _UNSET,
    sync_mode: str = _UNSET,
    enabled: bool = _UNSET,
) -> Pipeline:
    """Change the given fields (the others stay); same validation as ``pipeline_create``.

    **Repointing** (SPEC §3.4): ``source_id``/``destination_id`` point the pipeline at another
    connector of its organization (a duplicate with a new schema, typically). The mapping,
    the one given or else the stored one, is checked again against the new ends; a new
    source also resets the cursor to 0, so the next incremental run sends the new source's
    records from its first one, and runs made before it no longer count for that source
    (``source_since``: their failed records cannot be retried, they are not in the new
    source). Refused with ``PipelineConflict`` while a run of the pipeline is unfinished:
    that run reads the current ends. A changed schedule or ``enabled`` computes
    ``next_run_at`` again. Raises ``InvalidInput`` like ``pipeline_create``.
    """
    pipeline = Pipeline.objects.select_related("source__source", "destination").locked(
        pipeline,
        of=("self",),  # PostgreSQL refuses FOR UPDATE on an outer join's null side
    )
    organization = pipeline.organization
    source, destination = pipeline.source, pipeline.destination
    if source_id is not _UNSET and str(source_id) != str(pipeline.source_id):
        source = _connector(organization=organization, connector_id=source_id, field="source")
    if destination_id is not _UNSET and str(destination_id) != str(pipeline.destination_id):
        destination = _connector(
            organization=organization, connector_id=destination_id, field="destination"
        )
    repointed = source.pk != pipeline.source_id or destination.pk != pipeline.destination_id
    if repointed:
        _check_ends(source=source, destination=destination)
        if _unfinished_runs(pipeline).exists():
            raise PipelineConflict(
                "This pipeline has a run in progress; wait until it ends (or cancel it), "
                "then point the pipeline at the other connector."
            )
    if name is not _UNSET:
        pipeline.name = _clean_name(name)
    if mapping is not _UNSET or repointed:
        given = mapping if mapping is not _UNSET else pipeline.mapping
        try:
            pipeline.mapping = _validated_mapping(
                mapping=given, source=source, destination=destination
            )
        except InvalidInput as exc:
            if mapping is not _UNSET:
                raise
            detail = (
                "The pipeline's mapping does not fit the new connector's schema; "
                "send a mapping that does with the change."
            )
            raise InvalidInput(exc.errors, detail=detail) from None
    if source.pk != pipeline.source_id:
        pipeline.source, pipeline.cursor, pipeline.source_since = source, 0, timezone.now()
    pipeline.destination = destination
    if sync_mode is not _UNSET:
        _check_sync_mode(sync_mode)
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
    pipeline = Pipeline.objects.locked(pipeline)
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
        # of=self: PostgreSQL refuses FOR UPDATE on the nullable side of the outer join
        # to the source's settings (a reverse one-to-one).
        locked = Pipeline.objects.select_related("source__source").locked(pipeline, of=("self",))
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
        parent = Run.objects.select_related("pipeline").locked(run, of=("self",))
        if parent.state not in FINISHED_RUN_STATES or parent.finished_at is None:
            raise PipelineConflict("This run has not finished yet.")
        since = parent.pipeline.source_since
        if since is not None and parent.created_at < since:
            # Its sequences number the records of the pipeline's previous source.
            raise PipelineConflict(
                "This run read the pipeline's previous source; its failed records are not "
                "in the current source and cannot be sent again from this pipeline."
            )
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
        locked = Run.objects.locked(run)
        if locked.state not in ACTIVE_RUN_STATES:
            raise PipelineConflict("This run has already finished.")
        locked.state = RunState.CANCELLED
        locked.save(update_fields=["state"])
        transaction.on_commit(lambda: run_enqueue(run_id=locked.id))
    return locked
