"""Real-browser tests: Playwright driving Debian's Chromium against pytest-django's live server.

Chromium comes from the system (``apt-get install chromium``; ``make test`` installs it when it
can). Where it cannot be installed, these tests skip and say why; everywhere else they run.
The customer's API is the loopback sink of ``tests.support.sink`` (``sink``), and runs are
executed by a real ``dramatiq.Worker`` on the configured broker (the in-process one by default).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import dramatiq
import pytest

from tests.support.sink import Sink

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


@pytest.fixture
def sink(settings) -> Iterator[Sink]:
    """The customer's API on loopback (``tests.support.sink``): answers 200 until a test sets
    ``sink.behave`` (``reject_containing("spam.example")``: 422 to bodies holding it)."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DELIVERY_RETRY_SCHEDULE = (0.05,)
    settings.DELIVERY_QUICK_RETRY_SECONDS = 0
    with Sink() as instance:
        yield instance


@pytest.fixture
def worker(transactional_db) -> Iterator[dramatiq.Worker]:
    """A real worker in this process, on the configured broker, executing the runs."""
    broker = dramatiq.get_broker()
    running = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    running.start()
    yield running
    running.stop()
