from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self) -> None:
        # What connectors needs from pipelines, without importing it (see connectors/hooks.py).
        from connectors import hooks
        from pipelines import probe

        hooks.destination_test.provide(probe.destination_test)
