"""``GET /api/v1/runs/{id}/requests/``: every request attempt of a run (SPEC §5.6).

Each attempt with the request as sent (method, URL, headers with secret values masked, the
first 2 KB of the body, rebuilt from the stored records: ``pipelines.request_log``) and the
destination's answer (status, headers, the start of the body, secrets removed).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination

from osmos.api import TenantScopedViewSet
from pipelines import selectors
from pipelines.inspector import describe_requests
from pipelines.models import Run


class RequestCursorPagination(CursorPagination):
    """Cursor pages in the order the requests were logged: stable while a run goes on, and
    as fast on page 10,000 of a single-mode run as on the first (index on (run, id))."""

    ordering = ("id",)
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


class _RequestSerializer(serializers.Serializer):
    method = serializers.CharField()
    url = serializers.CharField()
    headers = serializers.DictField(
        child=serializers.CharField(),
        help_text="As sent; the destination's header values masked (••••1234).",
    )
    body_excerpt = serializers.CharField(
        allow_null=True,
        help_text="The first 2 KB of the body, rebuilt from the stored records; null when "
        "they are no longer stored (retention).",
    )
    body_truncated = serializers.BooleanField()


class _ResponseSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    headers = serializers.DictField(
        child=serializers.CharField(),
        allow_null=True,
        help_text="Lower-case names; secret values removed. Null when not kept.",
    )
    body_excerpt = serializers.CharField(
        allow_blank=True,
        help_text="The first 2 KB with the destination's secrets removed (a 2xx body only "
        "when short: REQUEST_LOG_SUCCESS_BODY_CHARS).",
    )
    kept = serializers.BooleanField()


class RequestAttemptSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    chunk = serializers.IntegerField(allow_null=True, help_text="The chunk's index in the run.")
    sequence_from = serializers.IntegerField(help_text="First record (sequence) of the request.")
    sequence_to = serializers.IntegerField(help_text="Last record (sequence) of the request.")
    record_count = serializers.IntegerField()
    attempt = serializers.IntegerField(help_text="The chunk's attempt (1 = first).")
    sent_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField()
    status = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    request = _RequestSerializer(allow_null=True)
    response = _ResponseSerializer(allow_null=True)


class RunRequestsViewSet(TenantScopedViewSet):
    model = Run
    pagination_class = RequestCursorPagination
    serializer_class = RequestAttemptSerializer

    @extend_schema(
        summary="Request attempts of a run",
        description="Every HTTP request the run made, in order: chunk, sequence range, "
        "record count, attempt, time, duration, status, error, the request as sent and the "
        "answer. Cursor pages (`page_size` up to 1,000).",
        parameters=[OpenApiParameter("page_size", int, description="1 to 1,000 (50).")],
        responses={
            200: RequestAttemptSerializer(many=True),
            404: OpenApiResponse(description="No such run."),
        },
    )
    def list(self, request, pk=None):
        run = (
            self.get_queryset()
            .filter(pk=pk)
            .select_related("pipeline__source", "pipeline__destination")
            .first()
        )
        if run is None:
            raise NotFound()
        attempts = selectors.run_requests(organization=self.organization, run=run)
        page = self.paginate_queryset(attempts.select_related("chunk"))
        return self.get_paginated_response(describe_requests(run=run, attempts=page))
