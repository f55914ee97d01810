"""What `send` hands back: status, headers, body, a scrubbed excerpt; what is transient; the
wait a destination asks for. Against a real loopback server."""

from __future__ import annotations

import http.server
import json
import pickle
import threading
from urllib.parse import parse_qs, urlsplit

import pytest

from osmos.outbound.client import DeliveryError, OutboundSession
from tests.outbound.clients import client_fixture

# Every test runs against both clients (urllib3 and libcurl): the same contract.
Client = OutboundSession
client = client_fixture(__name__)

SECRET = "Bearer s3cr3t-t0ken-value-9f8e7d"


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers `/<status>?h=Name:value&...` with that status, those headers, and a body that
    echoes every request header (as JSON, as header lines, and as a query string)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        parts = urlsplit(self.path)
        status = int(parts.path.strip("/") or 200)
        received = dict(self.headers.items())
        lines = "".join(f"{name}: {value}\n" for name, value in received.items())
        query = "&".join(f"{name.lower()}={value}" for name, value in received.items())
        body = json.dumps({"you_sent": received}) + "\n" + lines + query
        payload = body.encode()
        self.send_response(status)
        for item in parse_qs(parts.query).get("h", []):
            name, _, value = item.partition(":")
            self.send_header(name, value)
        self.send_header("Set-Cookie", "session=server-side-cookie-123; HttpOnly")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture
def echo(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def send(url: str, **overrides):
    arguments = {
        "headers": [("Authorization", SECRET), ("X-Tenant-Key", "tenant-key-abcdef")],
        "body": b"{}",
        "idempotency_key": "key-1",
        "timeout": 5.0,
    }
    with Client() as session:
        return session.send("POST", url, **(arguments | overrides))


def test_a_2xx_response_has_lower_case_headers_the_body_and_an_excerpt(echo):
    response = send(f"{echo}/200?h=X-Request-Id:abc&h=RateLimit:limit=10,remaining=3,reset=2")

    assert response.status == 200
    assert response.headers["x-request-id"] == "abc"
    assert response.headers["ratelimit"] == "limit=10,remaining=3,reset=2"
    assert "X-Request-Id" not in response.headers
    assert response.body.startswith(b'{"you_sent"')
    assert 0 < response.elapsed < 5


def test_the_body_is_kept_up_to_max_body_bytes(echo):
    response = send(f"{echo}/200", max_body_bytes=10)

    assert response.body == b'{"you_sent'


def test_echoed_secrets_never_reach_the_excerpt_of_a_success(echo):
    response = send(f"{echo}/200")

    assert "s3cr3t-t0ken-value-9f8e7d" not in response.excerpt
    assert "tenant-key-abcdef" not in response.excerpt
    assert "[redacted]" in response.excerpt
    assert "Idempotency-Key" in response.excerpt  # the rest of the echo is kept
    assert b"s3cr3t-t0ken-value-9f8e7d" in response.body  # the raw body is the caller's


@pytest.mark.parametrize("status", [400, 429, 503])
def test_echoed_secrets_never_reach_the_excerpt_of_a_failure(echo, status):
    with pytest.raises(DeliveryError) as caught:
        send(f"{echo}/{status}")

    excerpt = caught.value.response_excerpt
    assert "s3cr3t-t0ken-value-9f8e7d" not in excerpt
    assert "tenant-key-abcdef" not in excerpt
    assert "[redacted]" in excerpt


def test_425_is_transient_like_408_429_and_5xx(echo):
    with pytest.raises(DeliveryError) as caught:
        send(f"{echo}/425")

    assert caught.value.transient is True
    assert caught.value.status == 425


def test_a_failure_carries_the_response_headers(echo):
    with pytest.raises(DeliveryError) as caught:
        send(f"{echo}/503?h=Retry-After:7&h=X-Trace:t1")

    assert caught.value.headers["x-trace"] == "t1"
    assert caught.value.retry_after == 7


def test_a_429_with_a_ratelimit_quota_at_zero_asks_for_its_reset(echo):
    with pytest.raises(DeliveryError) as caught:
        send(f"{echo}/429?h=RateLimit:limit=100,remaining=0,reset=5")

    assert caught.value.retry_after == 5


def test_a_429_with_x_ratelimit_headers_asks_for_their_reset(echo):
    with pytest.raises(DeliveryError) as caught:
        send(f"{echo}/429?h=X-RateLimit-Remaining:0&h=X-RateLimit-Reset:9")

    assert caught.value.retry_after == 9


def test_delivery_error_keeps_headers_through_pickling():
    error = DeliveryError("x", transient=True, status=503, headers={"retry-after": "3"})

    copy = pickle.loads(pickle.dumps(error))

    assert copy.headers == {"retry-after": "3"}
