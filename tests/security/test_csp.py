"""A strict Content-Security-Policy on every response, and no inline script in any page
(SPEC §6 docs page offline; issue 14 item 6). The routes are read from the URL map, so a new
page is checked without editing this file."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.reliability.test_tenant_isolation_sweep import _routes, _values_for
from tests.support.factories import build_world

STRICT = {
    "default-src": "'self'",
    "script-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}
# An inline <script> (no src) and inline event handlers (onclick=…, onload=…).
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
_INLINE_HANDLER = re.compile(rb"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
_CDN = re.compile(rb"""(?:src|href)=["']https?://""", re.IGNORECASE)


def policy(response) -> dict[str, str]:
    header = response.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    return {
        part.split()[0]: " ".join(part.split()[1:]) for part in header.split(";") if part.strip()
    }


def check_page(response) -> list[str]:
    path = response.request["PATH_INFO"]
    problems = []
    directives = policy(response)
    for name, value in STRICT.items():
        if directives.get(name) != value:
            problems.append(f"{path}: {name} is {directives.get(name)!r}, not {value!r}")
    if "html" in response.get("Content-Type", ""):
        body = response.content
        if _INLINE_SCRIPT.search(body):
            problems.append(f"{path}: inline <script>")
        if _INLINE_HANDLER.search(body):
            problems.append(f"{path}: inline event handler")
        if _CDN.search(body):
            problems.append(f"{path}: loads from another origin")
    return problems


@pytest.fixture
def world(org_a, member, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return build_world(org_a, member_user=member)


def test_every_page_of_the_url_map_has_the_strict_policy_and_no_inline_script(owner, world):
    client = Client()
    client.force_login(owner)
    problems: list[str] = []
    checked = 0
    for route in _routes():
        if route.text.startswith("admin/") or route.text == "logout/":
            continue
        if "<token>" in route.text:
            urls = [f"/ingest/{world.ingest_token}/"]
        else:
            urls = [route.url(values) for values in _values_for(route, world)]
        for url in urls:
            response = client.get(url)
            problems += check_page(response)
            checked += 1
    assert checked > 30
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "path", ["/login/", "/signup/", "/api/v1/docs/", "/no-such-page/", "/api/v1/nothing/"]
)
def test_anonymous_pages_and_errors_carry_the_policy(db, path):
    assert not check_page(Client().get(path))


def test_the_docs_pages_are_served_by_the_product(db, client):
    swagger = client.get("/api/v1/docs/")
    assert swagger.status_code == 200
    html = swagger.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    script = re.search(r'<script src="([^"]*script=[^"]*)"', html).group(1)
    init = client.get(script.replace("&amp;", "&"))
    assert init.status_code == 200
    assert "SwaggerUIBundle" in init.content.decode()
    bundle = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert bundle.status_code == 200


def test_a_static_file_carries_the_policy_too(db, client):
    response = client.get("/static/osmos/app.js")
    assert response.status_code == 200
    assert policy(response)["script-src"] == "'self'"
