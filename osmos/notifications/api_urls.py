from rest_framework.routers import SimpleRouter

from osmos.notifications.api import NotificationViewSet

router = SimpleRouter(use_regex_path=False)
router.register("notifications", NotificationViewSet, basename="notification")
urlpatterns = router.urls
