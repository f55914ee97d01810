"""``GET /api/v1/organization/``: who the caller acts for (lets integrations check a token)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView


class OrganizationSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    slug = serializers.SlugField()
    role = serializers.ChoiceField(choices=["owner", "admin", "member"])


class CurrentOrganizationView(APIView):
    @extend_schema(
        summary="The organization the caller acts for",
        responses=OrganizationSerializer,
        examples=[
            OpenApiExample(
                "Token of Acme",
                value={"id": "6f1c…", "name": "Acme", "slug": "acme", "role": "admin"},
                response_only=True,
            )
        ],
    )
    def get(self, request):
        membership = request._request.membership
        org = membership.organization
        return Response({"id": org.pk, "name": org.name, "slug": org.slug, "role": membership.role})
