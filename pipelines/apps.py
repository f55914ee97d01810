from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self) -> None:
        # What connectors needs from pipelines, without importing it (see connectors/hooks.py).
        from connectors import hooks
        from osmos.observability.metrics import register_state
        from pipelines import probe
        from pipelines.metrics import run_state_metrics

        hooks.destination_test.provide(probe.destination_test)
        register_state(run_state_metrics)
