from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "connectors"

    def ready(self) -> None:
        from connectors.models import Connector
        from osmos.tenancy.links import register_page

        # A link to a connector of another of the person's organizations offers a switch.
        for name in ("detail", "edit", "duplicate", "delete"):
            register_page(f"connectors:{name}", model=Connector, kwarg="connector_id")
