"""`manage.py run_scheduler`: the scheduler as its own process (safe to run more than once)."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from pipelines.scheduler import scheduler_loop, scheduler_tick


class Command(BaseCommand):
    help = "Create due pipeline runs from their schedules and resume stalled runs, forever."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one tick and exit.")

    def handle(self, *args, once: bool, **options):
        if once:
            self.stdout.write(str(scheduler_tick()))
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        scheduler_loop(stop=stop)
