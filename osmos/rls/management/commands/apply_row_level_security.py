"""``manage.py apply_row_level_security``: (re)create the tenant role's grants and policies.

``migrate`` already does this after every run; the command is for a database administrator
who created the role after migrating, or wants to check: ``--check`` lists unprotected tables.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from osmos.rls.policies import apply_policies, tables_without_policy


class Command(BaseCommand):
    help = "Apply the row-level security policies to every tenant table (PostgreSQL)."

    def add_arguments(self, parser):
        parser.add_argument("--database", default="default")
        parser.add_argument(
            "--check", action="store_true", help="Only report tables without a policy."
        )

    def handle(self, *args, database: str, check: bool, **options):
        if connections[database].vendor != "postgresql":
            self.stdout.write("Not PostgreSQL: row-level security does not apply (ORM scoping).")
            return
        if not check and not apply_policies(using=database, force=True):
            raise CommandError("The tenant role is missing or cannot be used; see the log.")
        missing = tables_without_policy(using=database)
        if missing:
            raise CommandError(f"Tables without a tenant policy: {', '.join(missing)}")
        self.stdout.write(self.style.SUCCESS("Every tenant table has its policy."))
