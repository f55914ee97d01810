from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self) -> None:
        # Declares the actors (and their queue) in every process: the engine enqueues by the
        # actor's name (``pipelines.queue``) without importing them.
        import pipelines.tasks  # noqa: F401

        # A destination that recovers (or is resumed) resumes its waiting runs at once.
        from connectors.health import destination_recovered
        from osmos.observability.metrics import register_state
        from pipelines.metrics import run_state_metrics
        from pipelines.queue import runs_wake_for_destination

        destination_recovered.connect(
            runs_wake_for_destination, dispatch_uid="pipelines.runs_wake_for_destination"
        )
        register_state(run_state_metrics)
