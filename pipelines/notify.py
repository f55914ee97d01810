"""Notifications about runs (SPEC §5.5): one per incident of a pipeline's runs failing.

A pipeline's first run that ends ``failed`` or ``partially_failed`` opens the incident
``pipeline:<id>:runs`` and notifies; the next failing runs are the same incident and stay
quiet; a run that succeeds closes it, so the next failure notifies again.
"""

from __future__ import annotations

from osmos.notifications.models import Event, SubjectType
from osmos.notifications.services import incident_close, incident_open
from pipelines.models import Run, RunState

_EVENTS = {RunState.FAILED: Event.RUN_FAILED, RunState.PARTIALLY_FAILED: Event.RUN_PARTIALLY_FAILED}


def run_outcome_notify(*, run: Run, pipeline_name: str) -> None:
    """Open or close the pipeline's incident after ``run`` ended (call after it is saved)."""
    key = f"pipeline:{run.pipeline_id}:runs"
    event = _EVENTS.get(run.state)
    if event is not None:
        incident_open(
            organization_id=run.organization_id,
            key=key,
            event=event,
            subject_type=SubjectType.RUN,
            subject_id=run.pk,
            message=(
                f"Pipeline “{pipeline_name}”: a run {run.state.replace('_', ' ')}; "
                f"{run.records_failed} of {run.records_total} records failed."
            ),
        )
    elif run.state == RunState.SUCCEEDED:
        incident_close(organization_id=run.organization_id, key=key)
