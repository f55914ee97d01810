"""One process for the embedded mode: web server, Dramatiq worker threads, scheduler.

The web server is waitress (SPEC §7: a production-grade WSGI server, not Django's
development server): a fixed pool of threads, HTTP/1.1 keep-alive, request bodies buffered
by the server (chunked ones included) before the application reads them. Responses are made
with ``DEBUG`` off whatever the settings say, so a visitor sees the product's own error
pages (``osmos.error_pages``: HTML for pages, problem documents under ``/api/``), never
Django's technical pages, and no SQL is kept in memory per query. Keys stay those generated
once into ``var/`` (the settings read them at start).
"""

from __future__ import annotations

import logging
import threading

import dramatiq
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.core.wsgi import get_wsgi_application
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

DEFAULT_THREADS = 8


def parse_addrport(addrport: str) -> tuple[str, int]:
    """``"127.0.0.1:8000"``, ``"[::1]:8000"`` or ``"8000"`` → ``(host, port)``."""
    host, _sep, port = addrport.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise CommandError(f"{addrport!r} is not HOST:PORT or PORT.") from None
    if not 0 <= number <= 65535:
        raise CommandError(f"The port must be from 0 to 65535, not {number}.")
    return host, number


class Command(BaseCommand):
    help = "Serve the web UI and API (waitress) with in-process worker threads and scheduler."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument(
            "--threads",
            type=int,
            default=DEFAULT_THREADS,
            help=f"Web server threads (default {DEFAULT_THREADS}).",
        )

    def handle(self, *args, addrport: str, threads: int, **options):
        if not settings.DRAMATIQ_BROKER_EMBEDDED:
            raise CommandError(
                "run_embedded uses the in-process broker; unset DRAMATIQ_BROKER_URL, or run "
                "gunicorn, `manage.py rundramatiq` and `manage.py run_scheduler` separately."
            )
        if threads < 1:
            raise CommandError("--threads must be at least 1.")
        host, port = parse_addrport(addrport)
        from waitress import create_server

        # The product's own error pages: Django reads DEBUG per request, so turning it off
        # before the first request is enough (the settings module stays as configured).
        settings.DEBUG = False
        application = get_wsgi_application()
        server = create_server(
            application,
            host=host,
            port=port,
            threads=threads,
            ident="osmos",
            # waitress buffers whole bodies (to a temporary file past 512 KB); the ingest
            # limit is the largest any request may have, then waitress answers 413 itself.
            max_request_body_size=settings.INGEST_MAX_BODY_BYTES,
            clear_untrusted_proxy_headers=True,
        )
        broker = dramatiq.get_broker()
        worker = dramatiq.Worker(broker, worker_threads=settings.EMBEDDED_WORKER_THREADS)
        worker.start()
        stop = threading.Event()
        for path in settings.EMBEDDED_BACKGROUND_LOOPS:
            loop = import_string(path)
            threading.Thread(target=loop, kwargs={"stop": stop}, name=path, daemon=True).start()
        self.stdout.write(
            f"Serving on http://{addrport_text(host, server.effective_port)}/ (waitress, "
            f"{threads} threads). Worker: {settings.EMBEDDED_WORKER_THREADS} threads on the "
            f"in-process broker; background loops: "
            f"{', '.join(settings.EMBEDDED_BACKGROUND_LOOPS) or 'none'}. Ctrl-C stops."
        )
        self.stdout.flush()
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
            stop.set()
            worker.stop()


def addrport_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
