from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self) -> None:
        # What connectors needs from pipelines, without importing it (see connectors/hooks.py).
        from connectors import hooks
        from osmos.observability.metrics import register_state
        from osmos.tenancy.links import register_page
        from pipelines import probe
        from pipelines.metrics import run_state_metrics
        from pipelines.models import Pipeline, Run

        hooks.destination_test.provide(probe.destination_test)
        register_state(run_state_metrics)
        # A link to a pipeline or run of another of the person's organizations offers a switch.
        for name in ("detail", "edit", "delete"):
            register_page(f"pipelines:{name}", model=Pipeline, kwarg="pipeline_id")
        register_page("pipelines:run", model=Run, kwarg="run_id")
