"""``GET /api/v1/connectors/{id}/rejections/``: a source's refused ingest requests (SPEC §4)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from connectors.models import Connector
from ingest.models import IngestRejection
from ingest.rejections import rejection_counts
from ingest.services import NotASource
from osmos.api import TenantScopedViewSet
from osmos.errors import InputError, InvalidInput


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
    model = Connector
    serializer_class = RejectionSerializer

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
        connector = self.get_object()
        if not connector.is_source:
            raise NotASource("Only a source connector receives requests.")
        rejections = IngestRejection.objects.filter(
            organization=self.organization, connector=connector
        )
        wanted = request.query_params.get("status")
        if wanted:
            if not wanted.isdigit():
                message = "status must be an HTTP status code."
                raise InvalidInput([InputError(field="status", message=message)])
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
