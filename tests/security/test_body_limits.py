"""Bodies outside ingest are bounded (SPEC §7): a 400 MB body to ``/login/`` or ``/api/`` is
refused with 413 before it is read, and the process does not grow by the body's size."""

from __future__ import annotations

import io
import sys
import tracemalloc

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client

BIG = 400 * 1024 * 1024


class EndlessBody(io.RawIOBase):
    """A WSGI input of ``size`` bytes produced as read: the test never holds the body."""

    def __init__(self, size: int):
        self.left = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        self.left -= size
        self.read_bytes += size
        return b"1" * size

    def readline(self, size: int = -1) -> bytes:
        return self.read(65536 if size is None or size < 0 else min(size, 65536))


def call_wsgi(path: str, content_type: str, extra: dict | None = None) -> tuple[str, int, int]:
    """(status line, bytes the app read, peak bytes allocated) for a 400 MB POST to ``path``."""
    body = EndlessBody(BIG)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(BIG),
        "wsgi.input": body,
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        **(extra or {}),
    }
    seen: dict[str, str] = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = status

    tracemalloc.start()
    try:
        result = WSGIHandler()(environ, start_response)
        b"".join(result)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seen["status"], body.read_bytes, peak


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/login/", "application/x-www-form-urlencoded"),
        ("/login/", "multipart/form-data; boundary=xyz"),
        ("/api/v1/connectors/", "application/json"),
        ("/api/v1/schema/", "application/json"),
    ],
)
def test_a_400_mb_body_is_refused_unread_with_bounded_memory(path, content_type, token_a):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {token_a}"} if path.startswith("/api/") else {}
    status, read, peak = call_wsgi(path, content_type, extra)
    assert status.startswith("413"), status
    assert read < 1024 * 1024
    assert peak < 32 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"


def test_the_api_413_is_json_with_detail(api_a):
    response = api_a.post(
        "/api/v1/connectors/",
        data=b"[" + b"1," * 2_000_000 + b"1]",
        content_type="application/json",
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_a_body_under_the_limit_still_works(api_a):
    response = api_a.post("/api/v1/connectors/", data=b"{}", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"]


def test_ingest_keeps_its_own_larger_limit(issued_source_for_limits):
    token = issued_source_for_limits.ingest_token
    records = b"[" + b",".join(b'{"id": %d}' % (10**12 + i) for i in range(200_000)) + b"]"
    assert len(records) > 2_621_440
    response = Client().post(f"/ingest/{token}/", data=records, content_type="application/json")
    assert response.status_code == 200, response.json()


@pytest.fixture
def issued_source_for_limits(org_a):
    from connectors.services import connector_create

    return connector_create(
        organization=org_a,
        name="Big",
        direction="source",
        fields=[{"name": "id", "type": "integer", "nullable": False}],
    )
