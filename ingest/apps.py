from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "ingest"

    def ready(self) -> None:
        # What connectors needs from ingest, without importing it (see connectors/hooks.py).
        from connectors import hooks
        from ingest import selectors, services, source_page, storage

        hooks.records_delete.provide(storage.records_delete)
        hooks.records_count.provide(selectors.records_count)
        hooks.source_page.provide(source_page.source_page_context)
        hooks.source_save.provide(services.source_save)
