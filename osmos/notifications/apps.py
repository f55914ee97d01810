from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "osmos.notifications"
    label = "notifications"
