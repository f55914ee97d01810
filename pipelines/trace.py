"""Where did record X go? A stored record's fate in every pipeline of its source (SPEC §5.6).

Derived from what the engine already writes — runs and their sequence ranges, chunks,
failure rows and the request log — never from a row per delivered record (that would double
the writes of every delivery). For each pipeline of the record's source:

- the runs that covered the record: ``sequence_from < sequence <= sequence_to``, and for a
  retry run only when its parent failed the record;
- the **latest** of them decides: a failure row → ``failed`` (reason, status, excerpt); a
  finished run without one → ``delivered``; an active run → ``delivered`` when its chunk is
  confirmed that far, ``waiting`` when the run waits for a retry, else ``in_progress``;
- no run yet → ``not_yet_sent``;
- every request attempt of those runs whose range held the record (newest first, bounded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Q

from ingest.models import Record
from pipelines.models import (
    FINISHED_RUN_STATES,
    ChunkState,
    Pipeline,
    RecordFailure,
    RequestLog,
    Run,
    RunChunk,
    RunState,
)

ATTEMPTS_SHOWN = 50


class Fate:
    DELIVERED = "delivered"
    FAILED = "failed"
    WAITING = "waiting"
    IN_PROGRESS = "in_progress"
    NOT_YET_SENT = "not_yet_sent"


@dataclass
class PipelineTrace:
    pipeline: Pipeline
    fate: str
    run: Run | None = None
    reason: str = ""
    http_status: int | None = None
    response_excerpt: str = ""
    waiting_until: datetime | None = None
    attempts: list[RequestLog] = field(default_factory=list)


def record_trace(*, record: Record) -> list[PipelineTrace]:
    """The record's fate in each pipeline of its source (the record is already scoped)."""
    pipelines = Pipeline.objects.filter(
        organization_id=record.organization_id, source_id=record.connector_id
    ).order_by("name")
    return [_trace(pipeline, record) for pipeline in pipelines]


def _covering_runs(pipeline: Pipeline, sequence: int):
    parent_failed = RecordFailure.objects.filter(run_id=OuterRef("parent_id"), sequence=sequence)
    runs = Run.objects.filter(
        organization_id=pipeline.organization_id,
        pipeline=pipeline,
        sequence_from__lt=sequence,
        sequence_to__gte=sequence,
    )
    if pipeline.source_since is not None:  # runs before a repoint read the previous source
        runs = runs.filter(created_at__gte=pipeline.source_since)
    return runs.filter(Q(parent__isnull=True) | Exists(parent_failed)).order_by("-created_at")


def _trace(pipeline: Pipeline, record: Record) -> PipelineTrace:
    sequence = record.sequence
    runs = list(_covering_runs(pipeline, sequence)[:20])
    if not runs:
        return PipelineTrace(
            pipeline=pipeline,
            fate=Fate.NOT_YET_SENT,
            reason="No run of this pipeline has covered the record yet"
            + (
                f"; the next is scheduled for {pipeline.next_run_at:%Y-%m-%d %H:%M %Z}."
                if pipeline.next_run_at
                else "; it goes with the next run (manual, or when the schedule fires)."
            ),
        )
    latest = runs[0]
    trace = PipelineTrace(pipeline=pipeline, fate=Fate.IN_PROGRESS, run=latest)
    trace.attempts = list(
        RequestLog.objects.filter(
            organization_id=pipeline.organization_id,
            run__in=runs,
            sequence_from__lte=sequence,
            sequence_to__gte=sequence,
        ).order_by("-created_at", "-id")[:ATTEMPTS_SHOWN]
    )
    failure = RecordFailure.objects.filter(run=latest, sequence=sequence).first()
    if failure is not None:
        trace.fate = Fate.FAILED
        trace.reason = failure.reason
        trace.http_status = failure.http_status
        trace.response_excerpt = failure.response_excerpt
    elif latest.state in FINISHED_RUN_STATES:
        trace.fate = Fate.DELIVERED
    else:
        _active_fate(trace, latest, sequence)
    return trace


def _active_fate(trace: PipelineTrace, run: Run, sequence: int) -> None:
    chunk = RunChunk.objects.filter(
        run=run, sequence_from__lt=sequence, sequence_to__gte=sequence
    ).first()
    confirmed = chunk is not None and (
        chunk.state == ChunkState.DONE
        or (chunk.confirmed_through is not None and sequence <= chunk.confirmed_through)
    )
    if confirmed:
        trace.fate = Fate.DELIVERED  # confirmed, and no failure row: delivered
    elif run.state == RunState.WAITING:
        trace.fate = Fate.WAITING
        trace.waiting_until = run.waiting_until
        trace.reason = run.last_error
    else:
        trace.fate = Fate.IN_PROGRESS
        trace.reason = run.queued_reason if run.state == RunState.QUEUED else ""


def trace_as_json(traces: list[PipelineTrace]) -> list[dict[str, Any]]:
    return [
        {
            "pipeline": {"id": str(t.pipeline.pk), "name": t.pipeline.name},
            "fate": t.fate,
            "run": str(t.run.pk) if t.run else None,
            "reason": t.reason,
            "http_status": t.http_status,
            "response_excerpt": t.response_excerpt,
            "waiting_until": t.waiting_until.isoformat() if t.waiting_until else None,
            "attempts": [
                {
                    "run": str(a.run_id),
                    "sent_at": a.created_at.isoformat(),
                    "attempt": a.attempt,
                    "status": a.status,
                    "duration_ms": a.duration_ms,
                    "error": a.error,
                    "record_count": a.record_count,
                }
                for a in t.attempts
            ],
        }
        for t in traces
    ]
