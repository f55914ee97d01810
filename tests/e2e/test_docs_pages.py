"""The API docs page renders in a real browser from the product's own files, offline, with no
Content-Security-Policy violation (the ``page`` fixture fails the test on any)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_swagger_ui_renders_without_any_other_origin(page, live_server):
    other_origins: list[str] = []
    page.on(
        "request",
        lambda request: (
            other_origins.append(request.url)
            if not request.url.startswith(live_server.url) and not request.url.startswith("data:")
            else None
        ),
    )
    page.goto("/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "osmos API" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector("text=/api/v1/connectors/")
    assert not other_origins
