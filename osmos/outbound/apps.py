from django.apps import AppConfig


class OutboundConfig(AppConfig):
    name = "osmos.outbound"
    label = "outbound"
    verbose_name = "Outbound requests"
    default_auto_field = "django.db.models.BigAutoField"
