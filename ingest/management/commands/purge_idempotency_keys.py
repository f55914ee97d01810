"""``manage.py purge_idempotency_keys``: delete ingest idempotency keys past their 24 hours.

Expired keys are already ignored by ingest; this reclaims their rows. Run it daily from cron
(or any scheduler); running it twice at once is harmless.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from ingest.idempotency_keys import idempotency_keys_purge


class Command(BaseCommand):
    help = "Delete ingest idempotency keys older than INGEST_IDEMPOTENCY_TTL_SECONDS."

    def handle(self, *args, **options) -> None:
        deleted = idempotency_keys_purge()
        self.stdout.write(f"Deleted {deleted} expired idempotency key(s).")
