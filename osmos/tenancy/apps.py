from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "osmos.tenancy"
    label = "tenancy"
    verbose_name = "Organizations and access"

    def ready(self) -> None:
        from osmos.tenancy import signals, signin  # noqa: F401  (connect their receivers)
