"""Inputs that answered 500 answer a clear 4xx: a crafted records cursor, a deeply nested API
body, ``?format=api`` with a Bearer token, an encoded ``..%2f`` static path (on real servers:
the WSGI server decodes ``%2f`` before Django sees the path)."""

from __future__ import annotations

import base64
import http.client
import sys

import pytest

from connectors.services import connector_create
from osmos.parsers import json_depth
from tests.reliability.processes import Children, child_env, free_port, wait_for

SCHEMA = [{"name": "id", "type": "integer", "nullable": False}]


@pytest.fixture
def source(org_a):
    return connector_create(
        organization=org_a, name="S", direction="source", fields=SCHEMA
    ).connector


@pytest.mark.parametrize("position", [b"p=abc", b"p=-1", b"p=99999999999999999999999", b"p=1.5"])
def test_a_crafted_records_cursor_is_a_clear_404(api_a, source, position):
    cursor = base64.b64encode(position).decode()
    response = api_a.get(f"/api/v1/connectors/{source.pk}/records/", {"cursor": cursor})
    assert response.status_code == 404
    assert response.json()["detail"] == "Invalid cursor"


def test_a_valid_cursor_still_pages(api_a, source):
    cursor = base64.b64encode(b"p=0").decode()
    response = api_a.get(f"/api/v1/connectors/{source.pk}/records/", {"cursor": cursor})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/connectors/", "/api/v1/pipelines/"])
def test_a_200000_level_nested_body_is_400(api_a, path):
    body = b"[" * 200_000 + b"]" * 200_000
    response = api_a.post(path, data=body, content_type="application/json")
    assert response.status_code == 400
    assert "nested deeper than 64" in response.json()["detail"]


def test_the_depth_scan_ignores_brackets_in_strings():
    assert json_depth(b'{"a": "[[[[[[", "b": [1, {"c": "]}\\"{"}]}') == 3
    assert json_depth(b"42") == 0


def test_an_ordinary_nested_body_is_parsed(api_a):
    body = {"name": "S", "direction": "source", "schema": SCHEMA, "extra": [[[[{"a": [1]}]]]]}
    response = api_a.post("/api/v1/connectors/", body, format="json")
    assert response.status_code == 400
    assert "extra" in response.json()  # parsed, then refused as an unknown key


def test_format_api_with_a_bearer_token_is_a_json_404(api_a):
    response = api_a.get("/api/v1/connectors/?format=api")
    assert response.status_code == 404
    assert response.json()["detail"]
    assert api_a.get("/api/v1/connectors/?format=json").status_code == 200


def raw_get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


ENCODED_PATHS = [
    "/static/..%2fsettings.py",
    "/static/osmos/..%2f..%2f..%2fosmos/settings.py",
    "/static/%2e%2e%2f%2e%2e%2fetc/passwd",
]


@pytest.mark.reliability
@pytest.mark.parametrize(
    "command",
    [
        ["manage.py", "runserver", "--noreload"],
        ["-m", "gunicorn", "osmos.wsgi", "-w", "1", "-b"],
    ],
    ids=["runserver", "gunicorn"],
)
def test_an_encoded_dot_dot_static_path_is_404_on_real_servers(tmp_path, command, transactional_db):
    port = free_port()
    children = Children(tmp_path)
    args = [sys.executable, *command, f"127.0.0.1:{port}"]
    children.start_command(args, child_env(DEBUG="true"), "server")
    try:
        wait_for(lambda: _answers(port), timeout=30, what="the server to start")
        assert raw_get(port, "/static/osmos/app.js") == 200
        for path in ENCODED_PATHS:
            assert raw_get(port, path) == 404, (path, children.logs())
    finally:
        children.kill_all()


def _answers(port: int) -> bool:
    try:
        return raw_get(port, "/static/osmos/app.js") > 0
    except OSError:
        return False
