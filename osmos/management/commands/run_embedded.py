"""One process for the embedded mode: web server, Dramatiq worker threads, scheduler."""

from __future__ import annotations

import logging
import threading

import dramatiq
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve the web UI and API with in-process worker threads and scheduler."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args, addrport: str, **options):
        if not settings.DRAMATIQ_BROKER_EMBEDDED:
            raise CommandError(
                "run_embedded uses the in-process broker; unset DRAMATIQ_BROKER_URL, or run "
                "gunicorn, `manage.py rundramatiq` and `manage.py run_scheduler` separately."
            )
        broker = dramatiq.get_broker()
        worker = dramatiq.Worker(broker, worker_threads=settings.EMBEDDED_WORKER_THREADS)
        worker.start()
        stop = threading.Event()
        for path in settings.EMBEDDED_BACKGROUND_LOOPS:
            loop = import_string(path)
            threading.Thread(target=loop, kwargs={"stop": stop}, name=path, daemon=True).start()
        self.stdout.write(
            f"Worker: {settings.EMBEDDED_WORKER_THREADS} threads on the in-process broker; "
            f"background loops: {', '.join(settings.EMBEDDED_BACKGROUND_LOOPS) or 'none'}"
        )
        try:
            call_command("runserver", addrport, use_reloader=False, use_threading=True)
        finally:
            stop.set()
            worker.stop()
