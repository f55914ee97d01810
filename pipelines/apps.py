from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self) -> None:
        from osmos.observability.metrics import register_state
        from pipelines.metrics import run_state_metrics

        register_state(run_state_metrics)
