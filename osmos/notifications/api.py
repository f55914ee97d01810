"""``/api/v1/notifications/``: the organization's notifications, newest first (SPEC §5.5)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from osmos.api import TenantScopedViewSet
from osmos.notifications import services
from osmos.notifications.models import Notification


class NotificationSerializer(serializers.ModelSerializer):
    subject = serializers.SerializerMethodField()
    read = serializers.BooleanField(read_only=True)

    class Meta:
        model = Notification
        fields = ["id", "event", "subject", "message", "created_at", "read"]
        read_only_fields = fields

    def get_subject(self, notification: Notification) -> dict[str, str]:
        return {"type": notification.subject_type, "id": str(notification.subject_id)}


class MarkReadSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.UUIDField(), required=False, max_length=1000, allow_empty=False
    )


class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Notifications of the caller's organization. ``?unread=true`` lists the unread ones."""

    serializer_class = NotificationSerializer
    lookup_value_converter = "uuid"
    # Reading a notification changes nothing a member could not see.
    member_actions = ("read",)

    def scoped_queryset(self, organization):
        queryset = Notification.objects.filter(organization=organization)
        if self.request.query_params.get("unread") in ("true", "1"):
            queryset = queryset.filter(read_at__isnull=True)
        return queryset

    @extend_schema(
        summary="Mark notifications read",
        request=MarkReadSerializer,
        responses={
            200: inline_serializer("MarkedRead", {"marked": serializers.IntegerField()}),
        },
    )
    @action(detail=False, methods=["post"])
    def read(self, request):
        """Mark the given ``ids`` read, or every unread notification when ``ids`` is omitted."""
        data = MarkReadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        marked = services.notifications_mark_read(
            organization=self.organization, ids=data.validated_data.get("ids")
        )
        return Response({"marked": marked})
