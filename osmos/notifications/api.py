"""``/api/v1/notifications/``: the organization's notifications, newest first (SPEC §5.5)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from osmos.api import TenantScopedViewSet
from osmos.notifications import services
from osmos.notifications.models import Notification, NotificationWebhook
from osmos.notifications.webhook import (
    webhook_delete,
    webhook_rotate_secret,
    webhook_set,
)


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

    model = Notification
    serializer_class = NotificationSerializer
    lookup_value_converter = "uuid"
    # Reading a notification changes nothing a member could not see.
    member_actions = ("read",)

    def safely_get_queryset(self, queryset):
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


# --- the organization's notification webhook ----------------------------------------------------


class WebhookSerializer(serializers.ModelSerializer):
    class Meta:
        model = NotificationWebhook
        fields = [
            "url",
            "last_attempt_at",
            "last_status",
            "last_error",
            "last_success_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WebhookWriteSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="http(s) URL every notification is POSTed to.")


class WebhookSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(
        help_text="The `whsec_` signing secret: only in the answer that creates or rotates it."
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


_NO_WEBHOOK = OpenApiResponse(description="No notification webhook is set.")
_MANAGERS = OpenApiResponse(description="Only owners and admins see or change the webhook.")


class NotificationWebhookViewSet(TenantScopedViewSet):
    """``/api/v1/notifications/webhook/``: the organization's notification webhook (owners
    and admins only, reading included: a webhook URL often holds a token)."""

    model = NotificationWebhook
    serializer_class = WebhookSerializer

    def _managers_only(self) -> None:
        if not self.membership.can_manage:
            raise PermissionDenied("Only owners and admins see or change the webhook.")

    def _current(self) -> NotificationWebhook:
        webhook = self.get_queryset().first()
        if webhook is None:
            raise NotFound("No notification webhook is set.")
        return webhook

    @extend_schema(
        summary="The notification webhook",
        description="Its URL and the outcome of its last attempt (status, error, time).",
        responses={200: WebhookSerializer, 403: _MANAGERS, 404: _NO_WEBHOOK},
    )
    def retrieve(self, request):
        self._managers_only()
        return Response(WebhookSerializer(self._current()).data)

    @extend_schema(
        summary="Set the notification webhook",
        description="Every notification is POSTed to `url` as JSON, signed as Standard "
        "Webhooks. Creating it answers 201 with its `secret` (shown this once); changing "
        "the URL of an existing one answers 200 and keeps the secret.",
        request=WebhookWriteSerializer,
        responses={
            200: WebhookSerializer,
            201: WebhookSecretSerializer,
            400: OpenApiResponse(description="Invalid URL."),
            403: _MANAGERS,
        },
    )
    def update(self, request):
        self._managers_only()
        data = WebhookWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        webhook, secret = webhook_set(
            organization=self.organization, url=data.validated_data["url"]
        )
        if secret is None:
            return Response(WebhookSerializer(webhook).data)
        return Response(
            {**WebhookSerializer(webhook).data, "secret": secret}, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        summary="Remove the notification webhook",
        responses={204: None, 403: _MANAGERS, 404: _NO_WEBHOOK},
    )
    def destroy(self, request):
        self._managers_only()
        if not webhook_delete(organization=self.organization):
            raise NotFound("No notification webhook is set.")
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Rotate the notification webhook's signing secret",
        description="A new `whsec_` secret (shown this once); the previous one stays valid "
        "for 24 hours (both signatures are sent), so the receiver can switch without a gap.",
        request=None,
        responses={200: WebhookSecretSerializer, 403: _MANAGERS, 404: _NO_WEBHOOK},
    )
    def rotate(self, request):
        self._managers_only()
        secret = webhook_rotate_secret(organization=self.organization)
        if secret is None:
            raise NotFound("No notification webhook is set.")
        return Response({**WebhookSerializer(self._current()).data, "secret": secret})
