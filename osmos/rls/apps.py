from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RowLevelSecurityConfig(AppConfig):
    name = "osmos.rls"
    label = "rls"
    verbose_name = "Row-level security"

    def ready(self) -> None:
        from osmos.rls import context  # noqa: F401  (connects the reconnection handler)
        from osmos.rls.policies import apply_after_migrate

        # Once per `migrate` (and per test-database flush), after every app's migrations:
        # new tenant tables get their policy without anyone writing a migration for it.
        post_migrate.connect(apply_after_migrate, sender=self, dispatch_uid="osmos.rls.apply")
