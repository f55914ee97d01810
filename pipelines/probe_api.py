"""``POST /api/v1/connectors/{id}/test/``: one request to a destination, answered inline
(``pipelines.probe``), with the request as it was sent."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from connectors.models import Connector
from osmos.api import TenantScopedViewSet, json_error
from pipelines.api import _DETAIL, _valid
from pipelines.probe import destination_test


class DestinationTestSerializer(serializers.Serializer):
    records = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        min_length=1,
        max_length=10,
        help_text="Records to send (checked against the destination schema); omitted = "
        "the first samples of the source of a pipeline into this destination, else records "
        "made up from the schema.",
    )


class SentRequestSerializer(serializers.Serializer):
    """The test request as sent: header values of the destination masked, 2 KB of body."""

    method = serializers.CharField()
    url = serializers.CharField(help_text="With any {{field}} placeholders filled.")
    headers = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))
    body_excerpt = serializers.CharField(allow_blank=True, help_text="The first 2 KB.")


class DestinationTestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    status = serializers.IntegerField(allow_null=True)
    response_excerpt = serializers.CharField(allow_blank=True)
    elapsed_ms = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True)
    records_sent = serializers.IntegerField()
    request = SentRequestSerializer(
        allow_null=True, help_text="Null when the request could not be built (see error)."
    )


class DestinationTestViewSet(TenantScopedViewSet):
    """``POST /api/v1/connectors/{id}/test/``: one request to a destination, answered inline."""

    serializer_class = DestinationTestResultSerializer

    model = Connector

    @extend_schema(
        summary="Test a destination",
        description="Sends sample records once (batch: one array; single: the first record) "
        "with a short timeout and reports the answer. A destination that cannot be reached "
        "is `ok: false` with the reason in `error`, not an error of this API.",
        request=DestinationTestSerializer,
        responses={200: DestinationTestResultSerializer, 400: _DETAIL, 404: _DETAIL},
        examples=[
            OpenApiExample(
                "Accepted",
                value={
                    "ok": True,
                    "status": 200,
                    "response_excerpt": '{"received": 3}',
                    "elapsed_ms": 84,
                    "error": "",
                    "records_sent": 3,
                    "request": {
                        "method": "POST",
                        "url": "https://api.example.com/events",
                        "headers": [
                            {"name": "Authorization", "value": "••••••••1f2e"},
                            {"name": "Content-Type", "value": "application/json"},
                        ],
                        "body_excerpt": '{"events":[{"id":1,"email":"a@example.com"}]}',
                    },
                },
                response_only=True,
            ),
            OpenApiExample(
                "Unreachable",
                value={
                    "ok": False,
                    "status": None,
                    "response_excerpt": "",
                    "elapsed_ms": 3,
                    "error": "Could not connect to api.example.com: Connection refused.",
                    "records_sent": 3,
                    "request": {
                        "method": "POST",
                        "url": "https://api.example.com/events",
                        "headers": [{"name": "Content-Type", "value": "application/json"}],
                        "body_excerpt": '[{"id":1,"email":"a@example.com"}]',
                    },
                },
                response_only=True,
            ),
        ],
    )
    def test(self, request, pk=None):
        connector = self.get_queryset().filter(pk=pk).select_related("destination").first()
        if connector is None:
            raise NotFound()
        if connector.is_source:
            return json_error("Only a destination can be tested.", status.HTTP_400_BAD_REQUEST)
        data = _valid(DestinationTestSerializer, request.data if request.data else {})
        result = destination_test(connector=connector, records=data.get("records"))
        return Response(DestinationTestResultSerializer(result).data)
