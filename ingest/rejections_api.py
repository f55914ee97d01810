"""``GET /api/v1/connectors/{id}/rejections/``: a source's refused ingest requests (SPEC §4)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound

from connectors.selectors import connector_get, connector_list
from ingest.models import IngestRejection
from ingest.rejections import rejection_counts
from osmos.api import TenantScopedViewSet, json_error


class RejectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = IngestRejection
        fields = [
            "created_at",
            "status",
            "detail",
            "error_count",
            "errors",
            "body_excerpt",
            "client_address",
        ]
        read_only_fields = fields


class SourceRejectionsViewSet(TenantScopedViewSet):
    serializer_class = RejectionSerializer

    def scoped_queryset(self, organization):
        return connector_list(organization=organization)

    @extend_schema(
        summary="List a source's rejected ingest requests",
        description="Newest first: the last 1,000 refused requests of the source (30 days), "
        "with the answer's `detail`, the first errors, the start of the body and the "
        "sender's address. `status=422` filters; `counts_24h` counts them by status.",
        parameters=[OpenApiParameter("status", int)],
        responses={
            200: RejectionSerializer(many=True),
            400: OpenApiResponse(description="The connector is a destination."),
            404: OpenApiResponse(description="No such connector in this organization."),
        },
    )
    def rejections(self, request, pk=None):
        connector = connector_get(organization=self.organization, connector_id=pk)
        if connector is None:
            raise NotFound()
        if not connector.is_source:
            return json_error("Only a source connector receives requests.", 400)
        rejections = IngestRejection.objects.filter(
            organization=self.organization, connector=connector
        )
        wanted = request.query_params.get("status")
        if wanted:
            if not wanted.isdigit():
                return json_error(
                    "status must be an HTTP status code.", status.HTTP_400_BAD_REQUEST
                )
            rejections = rejections.filter(status=int(wanted))
        page = self.paginate_queryset(rejections)
        response = self.get_paginated_response(RejectionSerializer(page, many=True).data)
        counts = rejection_counts(
            organization=self.organization,
            connector_id=connector.pk,
            since=timezone.now() - timedelta(hours=24),
        )
        response.data["counts_24h"] = {str(k): v for k, v in counts.items()}
        return response
