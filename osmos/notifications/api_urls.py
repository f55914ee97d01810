from django.urls import path
from rest_framework.routers import SimpleRouter

from osmos.notifications.api import NotificationViewSet, NotificationWebhookViewSet

router = SimpleRouter(use_regex_path=False)
router.register("notifications", NotificationViewSet, basename="notification")
urlpatterns = [
    # Before the router: "webhook" is no notification id.
    path(
        "notifications/webhook/",
        NotificationWebhookViewSet.as_view(
            {"get": "retrieve", "put": "update", "delete": "destroy"}
        ),
        name="notification-webhook",
    ),
    path(
        "notifications/webhook/rotate-secret/",
        NotificationWebhookViewSet.as_view({"post": "rotate"}),
        name="notification-webhook-rotate",
    ),
    *router.urls,
]
