"""REST API of ingest: a source's stored records and the sample gate (SPEC §6).

``GET /api/v1/connectors/{id}/records/`` — members may read; cursor-paginated by ascending
sequence, so the first page holds the samples.
``POST /api/v1/connectors/{id}/save/`` — owners/admins/tokens: ``ready`` → ``active``.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from connectors.models import Connector
from connectors.selectors import connector_get
from connectors.serializers import ConnectorSerializer
from ingest.search import BadMatch, parse_match, records_matching
from ingest.selectors import records_of
from ingest.services import NotASource, source_save
from osmos.api import CursorPagination, TenantScopedViewSet
from osmos.pagination import requested_page_size

_NOT_A_SOURCE = "Only a source connector stores records."


class RecordSerializer(serializers.Serializer):
    sequence = serializers.IntegerField(help_text="Order of arrival, per connector, from 1.")
    received_at = serializers.DateTimeField()
    record = serializers.JSONField(source="data", help_text="The record as it was received.")


class RecordCursorPagination(CursorPagination):
    """Cursor pages in ascending sequence: stable while new records arrive at the end."""

    ordering = ("sequence",)
    page_size = 50  # = the samples required, so the first page is the sample preview

    def decode_cursor(self, request):
        """DRF's cursor, refused (404 "Invalid cursor", as DRF answers any bad cursor) unless
        its position is a sequence number: a crafted ``p=abc`` must not reach the query."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                position = int(cursor.position)
            except ValueError:
                raise NotFound(self.invalid_cursor_message) from None
            if not 0 <= position < 2**63:
                raise NotFound(self.invalid_cursor_message)
        return cursor


_DETAIL = inline_serializer("IngestDetail", fields={"detail": serializers.CharField()})
_SAMPLES_REQUIRED = inline_serializer(
    "SamplesRequired",
    fields={
        "detail": serializers.CharField(),
        "sample_count": serializers.IntegerField(),
        "samples_required": serializers.IntegerField(),
    },
)
_RECORD_EXAMPLE = {
    "sequence": 1,
    "received_at": "2025-03-01T09:30:00.123456Z",
    "record": {"id": 1, "email": "ada@example.com", "amount": 12.5},
}


class SourceRecordsViewSet(TenantScopedViewSet):
    """The records and the sample gate of the caller's organization's source connectors."""

    model = Connector
    serializer_class = RecordSerializer
    pagination_class = RecordCursorPagination

    @extend_schema(
        summary="List a source's stored records",
        description="Ascending sequence (order of arrival). The first page holds the samples "
        "(the first 50 records). Follow `next` for more; `page_size` up to 1000.\n\n"
        'With `match=<field>:<JSON value>` (e.g. `match=id:14`, `match=email:"a@b.c"`, '
        "`match=note:null`) it finds records by a field's value instead, newest first: a "
        "bounded scan with a time limit; `search` says whether every record was examined "
        "and `next` (`before=<sequence>`) continues below.",
        parameters=[
            OpenApiParameter("match", str, description="`<field>:<JSON value>`"),
            OpenApiParameter("before", int, description="With `match`: search below this."),
        ],
        responses={
            200: RecordSerializer(many=True),
            400: OpenApiResponse(_DETAIL, description="The connector is a destination."),
            404: OpenApiResponse(_DETAIL, description="No such connector in this organization."),
        },
        examples=[
            OpenApiExample(
                "First page",
                value={
                    "next": "https://osmos.example/api/v1/connectors/<id>/records/?cursor=cD01MA%3D%3D",
                    "previous": None,
                    "results": [_RECORD_EXAMPLE],
                },
                response_only=True,
            )
        ],
    )
    def records(self, request, pk=None):
        connector = self.get_object()
        if not connector.is_source:
            raise NotASource(_NOT_A_SOURCE)
        if "match" in request.query_params:
            return self._search(request, connector)
        records = records_of(organization=self.organization, connector=connector)
        page = self.paginate_queryset(records)
        return self.get_paginated_response(RecordSerializer(page, many=True).data)

    def _search(self, request, connector: Connector) -> Response:
        params = request.query_params
        try:
            field, value = parse_match(
                params["match"], fields=[name for name, _, _ in connector.field_specs()]
            )
        except BadMatch as exc:
            raise ValidationError({"match": [str(exc)]}) from None
        before = params.get("before")
        if before is not None and not before.isdigit():
            raise ValidationError({"before": ["Must be a record sequence."]})
        limit = requested_page_size(request, RecordCursorPagination.page_size)
        found = records_matching(
            organization=self.organization,
            connector=connector,
            field=field,
            value=value,
            limit=limit,
            before=int(before) if before is not None else None,
        )
        more = found.scanned_down_to > 1
        next_url = None
        if more:
            query = params.copy()
            query["before"] = str(found.scanned_down_to)
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        if not found.complete:
            detail = (
                f"The search stopped after {settings.RECORD_SEARCH_SECONDS:g} s, having "
                f"examined the records down to sequence {found.scanned_down_to}; follow "
                "`next` to search the older ones."
            )
        elif more:
            detail = "More records may match: follow `next`."
        else:
            detail = "Every record of the source was examined."
        return Response(
            {
                "next": next_url,
                "previous": None,
                "results": RecordSerializer(found.records, many=True).data,
                "search": {
                    "complete": found.complete,
                    "scanned_down_to": found.scanned_down_to,
                    "detail": detail,
                },
            }
        )

    @extend_schema(
        summary="Save a source (ready → active)",
        description="A source needs at least 50 received records before it can be saved; "
        "while it has fewer, the answer is 409 with the current count. Saving an active "
        "source again answers 200 and changes nothing.",
        request=None,
        responses={
            200: ConnectorSerializer,
            400: OpenApiResponse(_DETAIL, description="The connector is a destination."),
            403: OpenApiResponse(_DETAIL, description="Members cannot save connectors."),
            404: OpenApiResponse(_DETAIL, description="No such connector in this organization."),
            409: OpenApiResponse(_SAMPLES_REQUIRED, description="Fewer than 50 records yet."),
        },
        examples=[
            OpenApiExample(
                "Not enough samples",
                status_codes=["409"],
                value={
                    "detail": "This source has received 12 of the 50 sample records it needs "
                    "before it can be saved; send more records to its ingest URL.",
                    "sample_count": 12,
                    "samples_required": 50,
                },
                response_only=True,
            )
        ],
    )
    def save(self, request, pk=None):
        connector = self.get_object()
        source_save(connector=connector)  # NotASource: 400, SamplesRequired: 409
        fresh = connector_get(organization=self.organization, connector_id=connector.pk)
        return Response(ConnectorSerializer(fresh, context={"request": request}).data)
