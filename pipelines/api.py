"""REST API of pipelines and runs (SPEC §6); the destination ``test/`` action is in
``pipelines.probe_api``, the failures CSV in ``pipelines.failures_csv``.

Views are thin: serializers check the shape of the input, ``pipelines.services`` validates
and writes. Objects of other organizations are not in any queryset, so they answer 404;
a connector of another organization named in a pipeline answers 400 "No such connector.".
A refused change (``services.PipelineConflict``, a ``Conflict``) is rendered by the API's
exception handler: 409 with the service's message.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, renderers, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from osmos.api import TenantScopedViewSet
from osmos.tenancy.authentication import TokenUser
from pipelines import selectors, services
from pipelines.api_examples import FAILURE_EXAMPLE, PIPELINE_EXAMPLE, RUN_EXAMPLE
from pipelines.failures_csv import CSVRenderer, failures_csv_rows
from pipelines.models import Pipeline, RecordFailure, Run, RunState, SyncMode, Trigger

# --- serializers --------------------------------------------------------------------------------


class ScheduleSerializer(serializers.Serializer):
    cron = serializers.CharField(help_text="Five-field cron expression, e.g. `0 7 * * *`.")
    timezone = serializers.CharField(
        default="UTC", help_text="IANA time zone in which the cron expression is read."
    )


class PipelineSerializer(serializers.ModelSerializer):
    source = serializers.UUIDField(source="source_id")
    destination = serializers.UUIDField(source="destination_id")
    mapping = serializers.DictField(
        child=serializers.CharField(), help_text="{destination field: source field}"
    )
    schedule = serializers.SerializerMethodField()

    class Meta:
        model = Pipeline
        fields = [
            "id",
            "name",
            "source",
            "destination",
            "mapping",
            "schedule",
            "sync_mode",
            "enabled",
            "next_run_at",
            "created_at",
            "updated_at",
        ]

    def get_schedule(self, pipeline: Pipeline) -> ScheduleSerializer(allow_null=True):  # type: ignore[valid-type]
        if not pipeline.schedule_cron:
            return None
        return {"cron": pipeline.schedule_cron, "timezone": pipeline.schedule_timezone}


class PipelineWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    source = serializers.UUIDField()
    destination = serializers.UUIDField()
    mapping = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        allow_null=True,
        help_text="{destination field: source field}; omitted or null = same names.",
    )
    schedule = ScheduleSerializer(required=False, allow_null=True, help_text="null = manual only")
    sync_mode = serializers.ChoiceField(choices=SyncMode.choices, default=SyncMode.INCREMENTAL)
    enabled = serializers.BooleanField(default=True)


class PipelinePatchSerializer(PipelineWriteSerializer):
    def get_fields(self):
        fields = super().get_fields()
        for item in fields.values():
            item.required = False
        fields["sync_mode"].default = serializers.empty
        fields["enabled"].default = serializers.empty
        return fields


class RunSerializer(serializers.ModelSerializer):
    pipeline = serializers.UUIDField(source="pipeline_id")
    waiting_until = serializers.DateTimeField(
        allow_null=True,
        help_text="A `waiting` run: when its next attempt goes (null while its destination "
        "is paused, or when it is not waiting).",
    )
    last_error = serializers.CharField(
        allow_blank=True, help_text="The last error that made the run wait (kept afterwards)."
    )

    class Meta:
        model = Run
        fields = [
            "id",
            "pipeline",
            "trigger",
            "state",
            "records_total",
            "records_delivered",
            "records_failed",
            "requests_made",
            "created_at",
            "started_at",
            "finished_at",
            "waiting_until",
            "last_error",
        ]


class FailureSerializer(serializers.ModelSerializer):
    record = serializers.JSONField(allow_null=True)

    class Meta:
        model = RecordFailure
        fields = ["sequence", "record", "reason", "http_status", "response_excerpt"]
        extra_kwargs = {
            "response_excerpt": {
                "help_text": "The start of the destination's answer (at most 2 KB), secrets "
                "removed; empty when it did not answer."
            }
        }


_DETAIL = inline_serializer("PipelineDetail", fields={"detail": serializers.CharField()})


def _trigger_of(request) -> str:
    return Trigger.API if isinstance(request.user, TokenUser) else Trigger.MANUAL


def _provided(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: data[key] for key in keys if key in data}


# --- pipelines ----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List pipelines",
        examples=[OpenApiExample("A pipeline", value=[PIPELINE_EXAMPLE], response_only=True)],
    ),
    retrieve=extend_schema(
        summary="Get a pipeline",
        responses={200: PipelineSerializer, 404: _DETAIL},
        examples=[OpenApiExample("A pipeline", value=PIPELINE_EXAMPLE, response_only=True)],
    ),
)
class PipelineViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Pipelines of the caller's organization. Members read and run; owners/admins write."""

    serializer_class = PipelineSerializer
    member_actions = ("run",)
    lookup_value_converter = "uuid"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    # Mapping and schedule errors are {index, field, message} items (osmos.api.field_errors).
    input_lists = ("mapping", "schedule")

    model = Pipeline

    def safely_get_queryset(self, queryset):
        return selectors.pipeline_list(organization=self.organization)

    @extend_schema(
        summary="Create a pipeline",
        request=PipelineWriteSerializer,
        responses={201: PipelineSerializer, 400: OpenApiResponse(description="Invalid input")},
        examples=[
            OpenApiExample(
                "Daily at 07:00 in Paris",
                value={
                    "name": "Orders to CRM",
                    "source": PIPELINE_EXAMPLE["source"],
                    "destination": PIPELINE_EXAMPLE["destination"],
                    "mapping": {"id": "id", "email": "email", "total": "amount"},
                    "schedule": {"cron": "0 7 * * *", "timezone": "Europe/Paris"},
                },
                request_only=True,
            ),
            OpenApiExample("Created", value=PIPELINE_EXAMPLE, response_only=True),
        ],
    )
    def create(self, request):
        data = _valid(PipelineWriteSerializer, request.data)
        pipeline = services.pipeline_create(
            organization=self.organization,
            name=data["name"],
            source_id=data["source"],
            destination_id=data["destination"],
            mapping=data.get("mapping"),
            schedule=data.get("schedule"),
            sync_mode=data["sync_mode"],
            enabled=data["enabled"],
        )
        return Response(PipelineSerializer(pipeline).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a pipeline",
        description="Any field can change. `source`/`destination` point the pipeline at "
        "another connector of the organization (a duplicate with a new schema): the mapping "
        "(the one sent, else the stored one) is checked again against the new schemas, and a "
        "new source resets the cursor to the start of that source (the next incremental run "
        "sends its records from the first one). 409 while a run of the pipeline is "
        "unfinished. Mapping and schedule errors are `{index, field, message}` items.",
        request=PipelinePatchSerializer,
        responses={
            200: PipelineSerializer,
            400: OpenApiResponse(description="Invalid input"),
            404: _DETAIL,
            409: _DETAIL,
        },
        examples=[
            OpenApiExample("Pause", value={"enabled": False}, request_only=True),
            OpenApiExample("Manual only", value={"schedule": None}, request_only=True),
            OpenApiExample(
                "Point at the duplicated source",
                value={"source": "5d0c9a4e-2b7f-4c1d-9e3a-6f8b0c2d4e6a"},
                request_only=True,
            ),
        ],
    )
    def partial_update(self, request, pk=None):
        pipeline = self.get_object()
        data = _valid(PipelinePatchSerializer, request.data)
        changes = _provided(data, ("name", "mapping", "schedule", "sync_mode", "enabled"))
        for key in ("source", "destination"):
            if key in data:
                changes[f"{key}_id"] = data[key]
        pipeline = services.pipeline_update(pipeline=pipeline, **changes)
        return Response(PipelineSerializer(pipeline).data)

    @extend_schema(
        summary="Delete a pipeline and its runs",
        responses={204: None, 404: _DETAIL, 409: _DETAIL},
    )
    def destroy(self, request, pk=None):
        services.pipeline_delete(pipeline=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Run a pipeline now",
        description="Creates a queued run of the records that arrived since the last run "
        "(incremental) or of all records (full). Members may run pipelines.",
        request=None,
        responses={202: RunSerializer, 404: _DETAIL},
        examples=[
            OpenApiExample(
                "Queued",
                value={
                    **RUN_EXAMPLE,
                    "state": "queued",
                    "records_total": 0,
                    "records_delivered": 0,
                    "records_failed": 0,
                    "requests_made": 0,
                    "started_at": None,
                    "finished_at": None,
                },
                response_only=True,
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        run = services.run_create(pipeline=self.get_object(), trigger=_trigger_of(request))
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


def _valid(serializer_class, data) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError({"detail": "Send a JSON object."})
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- runs ---------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List runs",
        parameters=[
            OpenApiParameter("pipeline", str, description="Only runs of this pipeline (id)."),
            OpenApiParameter("state", str, enum=RunState.values, description="Only this state."),
        ],
        examples=[OpenApiExample("Runs", value=[RUN_EXAMPLE], response_only=True)],
    ),
    retrieve=extend_schema(
        summary="Get a run",
        responses={200: RunSerializer, 404: _DETAIL},
        examples=[
            OpenApiExample("A run", value=RUN_EXAMPLE, response_only=True),
            OpenApiExample(
                "Waiting",
                value={
                    **RUN_EXAMPLE,
                    "state": "waiting",
                    "records_delivered": 400,
                    "records_failed": 0,
                    "finished_at": None,
                    "waiting_until": "2025-03-01T10:02:04Z",
                    "last_error": "Attempt 3 failed: The destination answered 503 Service "
                    "Unavailable.",
                },
                response_only=True,
            ),
        ],
    ),
)
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Runs of the caller's organization's pipelines, newest first."""

    serializer_class = RunSerializer
    member_actions = ("retry_failed",)
    lookup_value_converter = "uuid"

    model = Run

    def safely_get_queryset(self, queryset):
        organization = self.organization
        if self.action != "list":
            return selectors.run_list(organization=organization)
        pipeline = self.request.query_params.get("pipeline") or None
        state = self.request.query_params.get("state") or None
        if pipeline is not None:
            try:
                uuid.UUID(pipeline)
            except ValueError:
                raise ValidationError({"pipeline": ["Must be a pipeline id."]}) from None
        if state is not None and state not in RunState.values:
            raise ValidationError({"state": [f"Must be one of {', '.join(RunState.values)}."]})
        return selectors.run_list(organization=organization, pipeline_id=pipeline, state=state)

    @extend_schema(
        summary="Failed records of a run",
        description="JSON pages of `{sequence, record, reason, http_status, "
        "response_excerpt}`; with "
        "`?format=csv` the whole list streams as CSV (columns sequence, http_status, reason, "
        "response_excerpt, record).",
        parameters=[OpenApiParameter("format", str, enum=["json", "csv"])],
        responses={200: FailureSerializer(many=True), 404: _DETAIL},
        examples=[OpenApiExample("A failure", value=[FAILURE_EXAMPLE], response_only=True)],
    )
    @action(
        detail=True,
        methods=["get"],
        renderer_classes=[renderers.JSONRenderer, renderers.BrowsableAPIRenderer, CSVRenderer],
    )
    def failures(self, request, pk=None):
        run = self.get_object()
        failures = selectors.run_failures(organization=self.organization, run=run)
        if request.accepted_renderer.format == "csv":
            response = StreamingHttpResponse(
                failures_csv_rows(failures), content_type="text/csv; charset=utf-8"
            )
            response["Content-Disposition"] = f'attachment; filename="run-{run.id}-failures.csv"'
            return response
        page = self.paginate_queryset(failures)
        return self.get_paginated_response(FailureSerializer(page, many=True).data)

    @extend_schema(
        summary="Send the failed records of a run again",
        description="Creates a run (trigger `retry`) of exactly the failed records. 409 when "
        "the run has not finished or has no failed record. Members may retry.",
        request=None,
        responses={202: RunSerializer, 404: _DETAIL, 409: _DETAIL},
        examples=[
            OpenApiExample(
                "Queued",
                value={**RUN_EXAMPLE, "trigger": "retry", "state": "queued"},
                response_only=True,
            )
        ],
    )
    @action(detail=True, methods=["post"], url_path="retry-failed")
    def retry_failed(self, request, pk=None):
        run = services.run_retry_failed(run=self.get_object())
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Cancel a run",
        description="No further request is sent; records not sent are recorded as failed "
        "(reason: cancelled) and can be retried. 409 when the run has already finished.",
        request=None,
        responses={200: RunSerializer, 404: _DETAIL, 409: _DETAIL},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = services.run_cancel(run=self.get_object())
        return Response(RunSerializer(run).data)
