"""``GET /api/v1/connectors/{id}/records/{sequence}/``: one record and its trace (SPEC §5.6)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from connectors.models import Connector
from connectors.selectors import connector_get
from ingest.selectors import record_get
from osmos.api import TenantScopedViewSet
from pipelines.trace import record_trace, trace_as_json

_ATTEMPTS = inline_serializer(
    "TraceAttempt",
    many=True,
    fields={
        "run": serializers.UUIDField(),
        "sent_at": serializers.DateTimeField(),
        "attempt": serializers.IntegerField(),
        "status": serializers.IntegerField(allow_null=True),
        "duration_ms": serializers.IntegerField(),
        "error": serializers.CharField(),
        "record_count": serializers.IntegerField(),
    },
)
_TRACE = inline_serializer(
    "RecordTrace",
    {
        "sequence": serializers.IntegerField(),
        "received_at": serializers.DateTimeField(),
        "record": serializers.JSONField(),
        "trace": inline_serializer(
            "PipelineTrace",
            many=True,
            fields={
                "pipeline": inline_serializer(
                    "TracePipeline",
                    {"id": serializers.UUIDField(), "name": serializers.CharField()},
                ),
                "fate": serializers.ChoiceField(
                    ["delivered", "failed", "waiting", "in_progress", "not_yet_sent"]
                ),
                "run": serializers.UUIDField(allow_null=True),
                "reason": serializers.CharField(),
                "http_status": serializers.IntegerField(allow_null=True),
                "response_excerpt": serializers.CharField(),
                "waiting_until": serializers.DateTimeField(allow_null=True),
                "attempts": _ATTEMPTS,
            },
        ),
    },
)


class RecordTraceViewSet(TenantScopedViewSet):
    model = Connector

    @extend_schema(
        summary="A stored record and where it went",
        description="The record and, for every pipeline from its source, its fate "
        "(`delivered`, `failed`, `waiting`, `in_progress`, `not_yet_sent`), the run that "
        "decided it, the failure reason, and the request attempts that carried it.",
        responses={200: _TRACE, 404: OpenApiResponse(description="No such record.")},
    )
    def trace(self, request, pk=None, sequence=None):
        connector = connector_get(organization=self.organization, connector_id=pk)
        if connector is None or not connector.is_source:
            raise NotFound()
        record = record_get(organization=self.organization, connector=connector, sequence=sequence)
        if record is None:
            raise NotFound("No record with this sequence (it may have been purged).")
        return Response(
            {
                "sequence": record.sequence,
                "received_at": record.received_at,
                "record": record.data,
                "trace": trace_as_json(record_trace(record=record)),
            }
        )
