from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "osmos.tenancy"
    label = "tenancy"
    verbose_name = "Organizations and access"
