from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self) -> None:
        # Declares the actors (and their queue) in every process: the engine enqueues by the
        # actor's name (``pipelines.queue``) without importing them.
        import pipelines.tasks  # noqa: F401

        # What connectors needs from pipelines, without importing it (see connectors/hooks.py).
        from connectors import hooks

        # A destination that recovers (or is resumed) resumes its waiting runs at once.
        from connectors.health import destination_recovered
        from osmos.observability.metrics import register_state
        from osmos.tenancy.links import register_page
        from pipelines import probe
        from pipelines.metrics import run_state_metrics
        from pipelines.models import Pipeline, Run
        from pipelines.queue import runs_wake_for_destination

        destination_recovered.connect(
            runs_wake_for_destination, dispatch_uid="pipelines.runs_wake_for_destination"
        )
        hooks.destination_test.provide(probe.destination_test)
        hooks.destination_preview.provide(probe.preview_or_problem)
        register_state(run_state_metrics)
        # A link to a pipeline or run of another of the person's organizations offers a switch.
        for name in ("detail", "edit", "delete"):
            register_page(f"pipelines:{name}", model=Pipeline, kwarg="pipeline_id")
        register_page("pipelines:run", model=Run, kwarg="run_id")
