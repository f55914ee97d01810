"""``GET /api/v1/runs/{id}/failures/csv/``: a run's failed records as one CSV file (SPEC §6).

The same file as ``failures/?format=csv``, as an operation of its own: a generated client
(``openapi-python-client``) parses one content type per answer, so the JSON pages and the CSV
cannot share an operation. Streamed, in batches (``pipelines.failures_csv``).
"""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from osmos.api import TenantScopedViewSet
from pipelines import selectors
from pipelines.api import RunSerializer
from pipelines.failures_csv import failures_csv_rows
from pipelines.models import Run


class RunFailuresCsvViewSet(TenantScopedViewSet):
    """The failed records of a run of the caller's organization, as CSV."""

    model = Run
    serializer_class = RunSerializer

    def safely_get_queryset(self, queryset):
        return selectors.run_list(organization=self.organization)

    @extend_schema(
        summary="Failed records of a run, as CSV",
        description="The whole list as one CSV file (columns sequence, http_status, reason, "
        "response_excerpt, record), streamed; the same as `failures/?format=csv`.",
        parameters=[
            OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Run.")
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The CSV file."),
            404: OpenApiResponse(description="No such run in your organization."),
        },
    )
    def failures_csv(self, request, pk=None):
        run = self.get_object()
        failures = selectors.run_failures(organization=self.organization, run=run)
        response = StreamingHttpResponse(
            failures_csv_rows(failures), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="run-{run.id}-failures.csv"'
        return response
