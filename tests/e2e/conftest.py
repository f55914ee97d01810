"""Real-browser tests: Playwright driving Debian's Chromium against pytest-django's live server.

Chromium comes from the system (``apt-get install chromium``; ``make test`` installs it when it
can). Where it cannot be installed, these tests skip and say why; everywhere else they run.
The customer's API is a real HTTP server on loopback (``sink``), and runs are executed by a
real ``dramatiq.Worker`` on the configured broker (the in-process one by default).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import pytest

CHROMIUM = os.environ.get("OSMOS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return (
            f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "(make test does when it runs as root with apt-get available)"
        )
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in the test's thread; the ORM calls the
    # tests make around it are ordinary blocking calls, which Django would otherwise refuse.
    # Only while a browser test module runs: elsewhere the safety check stays on.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    # Every page runs under the product's Content-Security-Policy: Chromium reports each
    # violation on the console ("Refused to execute inline script because it violates …").
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(f"{page.url}: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    context.close()
    assert not violations, "CSP violations in the browser console:\n" + "\n".join(violations)


# --- the customer's API ---------------------------------------------------------------------


@dataclass
class Sink:
    """A loopback HTTP server recording what it accepts.

    It answers ``status``, or 422 to a body that contains the text ``reject_containing``.
    """

    server: http.server.ThreadingHTTPServer
    bodies: list[Any] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    reject_containing: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def records(self) -> list[dict]:
        with self.lock:
            bodies = list(self.bodies)
        out: list[dict] = []
        for body in bodies:
            out.extend(body if isinstance(body, list) else [body])
        return out


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        sink: Sink = self.server.sink  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        body = json.loads(raw or b"null")
        status = sink.status
        if sink.reject_containing and sink.reject_containing.encode() in raw:
            status = 422
        if status < 300:
            with sink.lock:
                sink.bodies.append(body)
                sink.headers.append(dict(self.headers.items()))
        answer = b'{"ok": true}' if status < 300 else b'{"error": "email is not accepted"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_POST = do_PUT = do_PATCH = _handle

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture
def sink(settings) -> Iterator[Sink]:
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DELIVERY_RETRY_SCHEDULE = (0.05,)
    settings.DELIVERY_QUICK_RETRY_SECONDS = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    instance = Sink(server=server)
    server.sink = instance  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield instance
    server.shutdown()
    server.server_close()


@pytest.fixture
def worker(transactional_db) -> Iterator[dramatiq.Worker]:
    """A real worker in this process, on the configured broker, executing the runs."""
    broker = dramatiq.get_broker()
    running = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    running.start()
    yield running
    running.stop()
