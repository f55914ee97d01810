"""Pipelines, their runs, and everything a run writes down about its records.

A ``Run`` covers a fixed set of source records: ``sequence_from < sequence <= sequence_to``
(or, for a retry run, the failed records of ``parent``). It is cut into ``RunChunk`` rows when
it starts; a chunk is the unit that is confirmed (``done``) in one transaction together with
its ``RecordFailure`` rows and the run's counters, so that at the end of a run
``records_delivered + records_failed == records_total`` and a resumed run never re-sends a
chunk that was confirmed. ``RequestLog`` keeps one row per HTTP request (never request
header values), and ``RequestTemplate`` how a run's requests were made.
"""

from __future__ import annotations

import uuid

from django.db import models

from connectors.models import Connector
from osmos.tenancy.models import TenantModel


class SyncMode(models.TextChoices):
    INCREMENTAL = "incremental", "Incremental (records since the last run)"
    FULL = "full", "Full (all records each run)"


class Pipeline(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    # PROTECT: the connectors' delete service turns the ProtectedError into a message that
    # names the pipelines using the connector.
    source = models.ForeignKey(
        Connector, on_delete=models.PROTECT, related_name="pipelines_as_source"
    )
    destination = models.ForeignKey(
        Connector, on_delete=models.PROTECT, related_name="pipelines_as_destination"
    )
    # {destination field: source field}; destination fields absent here are not sent.
    mapping = models.JSONField(default=dict)
    schedule_cron = models.CharField(max_length=200, blank=True, default="")
    schedule_timezone = models.CharField(max_length=64, blank=True, default="")
    sync_mode = models.CharField(
        max_length=11, choices=SyncMode.choices, default=SyncMode.INCREMENTAL
    )
    enabled = models.BooleanField(default=True)
    # The last source sequence handed to a run (incremental mode).
    cursor = models.PositiveBigIntegerField(default=0)
    # When the pipeline was pointed at its current source (SPEC §3.4); null = since creation.
    # Runs made before read another source: their sequences are not this source's.
    source_since = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="uniq_pipeline_name")
        ]
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="pipeline_due")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_scheduled(self) -> bool:
        return bool(self.schedule_cron)


class Trigger(models.TextChoices):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    API = "api"
    RETRY = "retry"


class RunState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    # A transient failure is retried later (``waiting_until``); no worker holds the run.
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_RUN_STATES = (RunState.QUEUED, RunState.RUNNING, RunState.WAITING)
FINISHED_RUN_STATES = (
    RunState.SUCCEEDED,
    RunState.PARTIALLY_FAILED,
    RunState.FAILED,
    RunState.CANCELLED,
)


class Run(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=8, choices=Trigger.choices)
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    # The records covered: sequence_from < sequence <= sequence_to of the pipeline's source.
    sequence_from = models.PositiveBigIntegerField(default=0)
    sequence_to = models.PositiveBigIntegerField(default=0)
    # A retry run covers only the failed records of its parent (within the range above).
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    # The mapping in force when the run was created: a resumed run maps records the same way.
    mapping = models.JSONField(default=dict)
    records_total = models.PositiveBigIntegerField(default=0)
    records_delivered = models.PositiveBigIntegerField(default=0)
    records_failed = models.PositiveBigIntegerField(default=0)
    requests_made = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    planned_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The worker executing the run holds the lease and refreshes heartbeat_at; a lease whose
    # heartbeat is older than settings.RUN_HEARTBEAT_TIMEOUT_SECONDS may be taken over.
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # How many times a worker took the lease, and how many times the sweep found the run
    # without a live worker; past settings.RUN_MAX_RESUMES the run gives up (a run that
    # kills its worker every time must not be resumed forever).
    attempts = models.PositiveIntegerField(default=0)
    resumes = models.PositiveIntegerField(default=0)
    # A waiting run: when its next attempt is due (null: until a person resumes its paused
    # destination) and the error that made it wait. ``last_error`` stays after a success,
    # as a record of what happened, until the next error.
    waiting_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # A queued run that a worker handed back: what it waits for (the organization's limit of
    # runs at once, an earlier run of the pipeline); empty otherwise.
    queued_reason = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "heartbeat_at"], name="run_state_heartbeat"),
            models.Index(fields=["state", "waiting_until"], name="run_state_waiting"),
            models.Index(fields=["pipeline", "-created_at"], name="run_pipeline_created"),
        ]

    def __str__(self) -> str:
        return f"run {self.id} of {self.pipeline_id} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_RUN_STATES

    @property
    def is_settled(self) -> bool:
        """Every record of the run is accounted for (delivered or failed)."""
        return (
            self.planned_at is not None
            and self.records_delivered + self.records_failed == self.records_total
        )


class ChunkState(models.TextChoices):
    PENDING = "pending"
    DONE = "done"


class RunChunk(TenantModel):
    """A slice of a run's records sent (batch mode: as one request) and confirmed together."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    # Records with sequence_from < sequence <= sequence_to (of the run's selection).
    sequence_from = models.PositiveBigIntegerField()
    sequence_to = models.PositiveBigIntegerField()
    record_count = models.PositiveIntegerField()
    # Sent with every attempt of this chunk, also after a resume on another worker.
    idempotency_key = models.CharField(max_length=100)
    state = models.CharField(max_length=8, choices=ChunkState.choices, default=ChunkState.PENDING)
    delivered = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Records up to this sequence are confirmed (single mode confirms a chunk in steps of
    # about a second); null: none yet. A resumed chunk starts after it.
    confirmed_through = models.PositiveBigIntegerField(null=True, blank=True)
    # The durable retry schedule (settings.DELIVERY_RETRY_SCHEDULE): attempts that failed
    # transiently, when the first of them failed, when the next is due, and the last error.
    attempts = models.PositiveIntegerField(default=0)
    first_failed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="uniq_chunk_index"),
        ]

    def __str__(self) -> str:
        return f"chunk {self.index} ({self.sequence_from}, {self.sequence_to}] of {self.run_id}"


EXCERPT_MAX_CHARS = 2048


class RecordFailure(TenantModel):
    """One record of a run that was not delivered, and why."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="failures")
    sequence = models.PositiveBigIntegerField()
    # The mapped record as it was (or would have been) sent; null when it could not be built.
    record = models.JSONField(null=True, blank=True)
    reason = models.TextField()
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "sequence"]
        constraints = [
            # One outcome per record and run: a chunk confirmed twice would violate it.
            models.UniqueConstraint(fields=["run", "sequence"], name="uniq_failure_sequence"),
        ]

    def __str__(self) -> str:
        return f"record {self.sequence} of run {self.run_id}: {self.reason[:60]}"


class RequestTemplate(TenantModel):
    """How a run's requests were made (the request inspector, ``pipelines.request_log``):
    written once per run, again only when the destination changed between two slices of the
    run (then the template with the latest ``valid_from`` before an attempt applies to it).
    Per attempt, the request log keeps only what cannot be rebuilt from this and the stored
    records. Secret header values are never stored: ``headers`` holds them masked."""

    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="request_templates", db_index=False
    )
    valid_from = models.DateTimeField()
    method = models.CharField(max_length=8)
    url = models.TextField()
    # "batch" (a JSON array per request) or "single" (one JSON object per request).
    write_mode = models.CharField(max_length=8)
    # [[name, masked value], ...]: the destination's own headers as sent.
    headers = models.JSONField(default=list)
    signed = models.BooleanField(default=False)
    # The body template's text before and after the records (SPEC §3.2; empty: none).
    body_prefix = models.TextField(blank=True, default="")
    body_suffix = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["run", "valid_from"]
        indexes = [models.Index(fields=["run", "valid_from"], name="request_template_run")]

    def __str__(self) -> str:
        return f"{self.method} {self.url} ({self.write_mode}) for {self.run_id}"


class RequestLog(TenantModel):
    """One HTTP request made by a run. Request header values are never stored; the answer's
    headers and excerpt are scrubbed of secrets and bounded (``pipelines.request_log``)."""

    # Indexed by (run, id) below: the inspector pages a run's requests in order.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="requests", db_index=False)
    chunk = models.ForeignKey(
        RunChunk, null=True, blank=True, on_delete=models.CASCADE, related_name="requests"
    )
    sequence_from = models.PositiveBigIntegerField()
    sequence_to = models.PositiveBigIntegerField()
    record_count = models.PositiveIntegerField()
    attempt = models.PositiveSmallIntegerField()
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField()
    error = models.TextField(blank=True, default="")
    # The destination's answer, scrubbed: {lower-case name: value} (null: no answer, or a
    # 2xx answer too long to keep) and the start of its body (at most EXCERPT_MAX_CHARS).
    response_headers = models.JSONField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "created_at", "id"]
        indexes = [models.Index(fields=["run", "id"], name="request_log_run_id")]

    def __str__(self) -> str:
        return f"request ({self.sequence_from}, {self.sequence_to}] attempt {self.attempt}"
