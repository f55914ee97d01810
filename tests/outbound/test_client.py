"""The outbound HTTP module against a real HTTP(S) server on loopback."""

from __future__ import annotations

import datetime
import email.utils
import http.server
import logging
import pickle
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from osmos.outbound.client import USER_AGENT, DeliveryError, OutboundSession
from osmos.outbound.ratelimit import parse_retry_after
from tests.outbound.clients import client_fixture

# Every test runs against both clients (urllib3 and libcurl): the same contract.
Client = OutboundSession
client = client_fixture(__name__)

SECRET = "Bearer s3cr3t-t0ken-value-9f8e7d"


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    client_port: int

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Records each request, then answers as the path and query say.

    /status/<code>?body=…&repeat=…&retry_after=…&location=…   answer <code> with those
    /sleep?seconds=…                                 wait, then answer 200
    anything else                                    answer 200 {"ok": true}
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.received.append(
            Received(
                self.command, self.path, list(self.headers.items()), body, self.client_address[1]
            )
        )
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if parts.path == "/sleep":
            time.sleep(float(query["seconds"]))
        status = int(parts.path.split("/")[2]) if parts.path.startswith("/status/") else 200
        payload = query.get("body", '{"ok": true}').encode() * int(query.get("repeat", 1))
        self.send_response(status)
        if "retry_after" in query:
            self.send_header("Retry-After", query["retry_after"])
        if "location" in query:
            self.send_header("Location", query["location"])
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_PUT = do_PATCH = do_POST

    def log_message(self, format, *args) -> None:
        pass


class RecordingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address) -> None:
        super().__init__(address, RecordingHandler)
        self.received: list[Received] = []
        self.connections = 0

    def verify_request(self, request, client_address) -> bool:
        self.connections += 1
        return True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up (timeout test) is expected

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


def start(server: RecordingServer) -> RecordingServer:
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture
def server(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DELIVERY_RETRY_AFTER_CAP_SECONDS = 300
    srv = start(RecordingServer(("127.0.0.1", 0)))
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def session():
    with Client() as outbound:
        yield outbound


def resolver_answering(*answers: str, calls: list[str] | None = None):
    """A getaddrinfo stand-in: the n-th lookup gets answers[n] (the last one repeats)."""
    calls = [] if calls is None else calls

    def resolve(host, port, *args, **kwargs):
        calls.append(host)
        address = answers[min(len(calls), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    return resolve


def send(session, url: str, **overrides):
    arguments = {"headers": [], "body": b"{}", "idempotency_key": "key-1", "timeout": 5.0}
    return session.send("POST", url, **(arguments | overrides))


# --- what the destination receives -------------------------------------------------------


def test_request_arrives_with_exact_body_method_and_headers(server, session):
    body = b'[{"id": 1, "name": "\xc3\xa9l\xc3\xa8ve"}]'

    session.send(
        "PUT",
        server.url("/v2/notify?tenant=a"),
        headers=[("Authorization", SECRET), ("X-Custom", "custom value")],
        body=body,
        idempotency_key="run-7-chunk-3",
        timeout=5,
    )

    [received] = server.received
    assert received.method == "PUT"
    assert received.path == "/v2/notify?tenant=a"
    assert received.body == body
    assert received.header("Content-Type") == "application/json"
    assert received.header("User-Agent") == USER_AGENT
    assert received.header("Idempotency-Key") == "run-7-chunk-3"
    assert received.header("Authorization") == SECRET
    assert received.header("X-Custom") == "custom value"
    assert received.header("Content-Length") == str(len(body))
    assert received.header("Host") == f"127.0.0.1:{server.port}"


def test_user_agent_names_the_product_and_its_version():
    assert USER_AGENT.startswith("osmos/")
    assert USER_AGENT.endswith("(+https://osmos.example/webhooks)")


def test_customer_headers_cannot_replace_the_headers_osmos_sets(server, session):
    send(
        session,
        server.url(),
        headers=[
            ("content-type", "text/plain"),
            ("User-Agent", "spoof"),
            ("Host", "evil.example"),
            ("Idempotency-Key", "other"),
        ],
    )

    [received] = server.received
    assert received.header("Content-Type") == "application/json"
    assert received.header("User-Agent") == USER_AGENT
    assert received.header("Host") == f"127.0.0.1:{server.port}"
    assert received.header("Idempotency-Key") == "key-1"


def test_patch_method_is_sent_as_given(server, session):
    session.send("patch", server.url(), headers=[], body=b"{}", idempotency_key="k", timeout=5)

    assert server.received[0].method == "PATCH"


def test_file_body_is_streamed_whole_with_content_length_and_no_chunked_encoding(server, session):
    payload = b'{"n": 1}\n' * 50_000  # 450 KB: more than one read, still in memory
    with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as file:
        file.write(payload)  # left at the end on purpose: send starts from the beginning

        send(session, server.url(), body=file)

        assert not file._rolled  # requests did not force it to disk to measure it

    [received] = server.received
    assert received.body == payload
    assert received.header("Content-Length") == str(len(payload))
    assert received.header("Transfer-Encoding") is None


def test_same_file_body_can_be_sent_again_for_a_retry(server, session):
    with tempfile.SpooledTemporaryFile() as file:
        file.write(b'{"retry": true}')
        send(session, server.url(), body=file)
        send(session, server.url(), body=file)

    assert [r.body for r in server.received] == [b'{"retry": true}'] * 2


def test_empty_body_is_sent_with_content_length_zero(server, session):
    send(session, server.url(), body=b"")

    assert server.received[0].header("Content-Length") == "0"


def test_requests_to_one_destination_reuse_one_connection(server, session):
    for n in range(5):
        send(session, server.url(f"/hook/{n}"), idempotency_key=f"key-{n}")

    assert len(server.received) == 5
    assert len({r.client_port for r in server.received}) == 1
    assert server.connections == 1


# --- answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204])
def test_2xx_answer_is_a_success_with_status_excerpt_and_elapsed_time(server, session, status):
    body = "" if status == 204 else "accepted"

    response = send(session, server.url(f"/status/{status}?body={body}"))

    assert response.status == status
    assert response.excerpt == body
    assert 0 < response.elapsed < 5


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
def test_other_4xx_answer_is_a_permanent_failure_with_the_response_excerpt(server, session, status):
    with pytest.raises(DeliveryError) as caught:
        send(session, server.url(f"/status/{status}?body=field+email+is+required"))

    error = caught.value
    assert error.transient is False
    assert error.status == status
    assert error.response_excerpt == "field email is required"
    assert str(status) in error.message
    assert error.retry_after is None


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_408_429_and_5xx_answers_are_transient_failures(server, session, status):
    with pytest.raises(DeliveryError) as caught:
        send(session, server.url(f"/status/{status}?body=try+later"))

    assert caught.value.transient is True
    assert caught.value.status == status
    assert caught.value.response_excerpt == "try later"


def test_long_response_body_is_cut_to_a_2_kb_excerpt(server, session):
    with pytest.raises(DeliveryError) as caught:
        send(session, server.url("/status/422?body=x&repeat=5000"))

    assert caught.value.response_excerpt == "x" * 2048


def test_response_body_that_is_not_utf8_is_decoded_leniently(server, session):
    with pytest.raises(DeliveryError) as caught:
        send(session, server.url("/status/400?body=caf%E9"))  # Latin-1 é, invalid UTF-8

    assert caught.value.response_excerpt.startswith("caf")
    assert "\ufffd" in caught.value.response_excerpt


def test_retry_after_in_seconds_is_returned_with_a_transient_failure(server, session):
    with pytest.raises(DeliveryError) as caught:
        send(session, server.url("/status/503?retry_after=120"))

    assert caught.value.retry_after == 120


def test_retry_after_as_an_http_date_is_turned_into_seconds(server, session):
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=90)
    header = email.utils.format_datetime(later, usegmt=True)

    with pytest.raises(DeliveryError) as caught:
        send(session, server.url(f"/status/429?retry_after={quote(header)}"))

    assert 85 <= caught.value.retry_after <= 90


def test_retry_after_is_capped_by_the_setting(server, session, settings):
    settings.DELIVERY_RETRY_AFTER_CAP_SECONDS = 60

    with pytest.raises(DeliveryError) as caught:
        send(session, server.url("/status/503?retry_after=86400"))

    assert caught.value.retry_after == 60


def test_retry_after_cap_defaults_to_a_day_without_the_setting(settings):
    del settings.DELIVERY_RETRY_AFTER_CAP_SECONDS

    assert parse_retry_after("3600") == 3600  # an hour's pause is honoured whole
    assert parse_retry_after("999999") == 86400


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        (" 42 ", 42),
        ("Wed, 01 Jan 2031 00:01:30 GMT", 90),
        ("Tue, 31 Dec 2030 23:00:00 GMT", 0),  # in the past
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_values_are_parsed_relative_to_now(value, expected, settings):
    settings.DELIVERY_RETRY_AFTER_CAP_SECONDS = 300
    now = datetime.datetime(2031, 1, 1, tzinfo=datetime.UTC)

    assert parse_retry_after(value, now=now) == expected


def test_redirect_is_not_followed_and_fails_permanently_naming_status_and_location(server, session):
    with pytest.raises(DeliveryError) as caught:
        send(session, server.url("/status/302?location=/redirect-target"))

    assert caught.value.transient is False
    assert caught.value.status == 302
    assert "302" in caught.value.message
    assert "/redirect-target" in caught.value.message
    assert [r.path for r in server.received] == ["/status/302?location=/redirect-target"]


# --- transport failures ------------------------------------------------------------------


def test_connection_refused_is_a_transient_failure(server, session):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    with pytest.raises(DeliveryError) as caught:
        send(session, f"http://127.0.0.1:{closed_port}/hook")

    assert caught.value.transient is True
    assert caught.value.status is None
    assert "Connection refused" in caught.value.message


def test_answer_slower_than_the_timeout_is_a_transient_failure(server, session):
    started = time.monotonic()

    with pytest.raises(DeliveryError) as caught:
        send(session, server.url("/sleep?seconds=1.5"), timeout=0.3)

    assert time.monotonic() - started < 1.2
    assert caught.value.transient is True
    assert "did not complete the request within 0.3 s" in caught.value.message


def test_host_that_does_not_resolve_at_send_time_is_a_transient_failure(server):
    def no_answer(host, port, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with Client(resolver=no_answer) as session, pytest.raises(DeliveryError) as caught:
        send(session, server.url(host="gone.test"))

    assert caught.value.transient is True
    assert "Could not resolve host gone.test" in caught.value.message


def test_timeout_is_mandatory_and_positive(session):
    with pytest.raises(ValueError, match="timeout"):
        send(session, "https://api.example.com/", timeout=0)


# --- the address guard at send time ------------------------------------------------------


def test_refused_address_is_refused_at_send_time_without_connecting(server, session, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []

    with pytest.raises(DeliveryError) as caught:
        send(session, server.url())

    assert caught.value.transient is False
    assert "loopback" in caught.value.message
    assert server.connections == 0


def test_name_resolving_to_a_refused_address_is_refused_without_connecting(server, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.2/32"]  # the server's 127.0.0.1 is not

    session = Client(resolver=resolver_answering("127.0.0.1"))
    with session, pytest.raises(DeliveryError) as caught:
        send(session, server.url(host="internal.test"))

    assert caught.value.transient is False
    assert "internal.test resolves to 127.0.0.1, a loopback address" in caught.value.message
    assert server.connections == 0


def test_url_with_credentials_is_refused_at_send_time_without_connecting(server, session):
    with pytest.raises(DeliveryError) as caught:
        send(session, server.url(host="user:pw@127.0.0.1"))

    assert caught.value.transient is False
    assert server.connections == 0


def test_connection_goes_to_the_checked_address_when_dns_answers_change(server):
    # rebind.test has no DNS record: the request can only reach the server through the
    # address the guard checked. Later answers point at a refused address.
    calls: list[str] = []
    resolver = resolver_answering("127.0.0.1", "10.0.0.1", calls=calls)

    with Client(resolver=resolver, dns_cache_seconds=0) as session:
        send(session, server.url("/first", host="rebind.test"))
        assert calls == ["rebind.test"]  # one lookup: no second one between check and connect

        with pytest.raises(DeliveryError, match=r"resolves to 10\.0\.0\.1") as caught:
            send(session, server.url("/second", host="rebind.test"))

    assert caught.value.transient is False
    assert [r.path for r in server.received] == ["/first"]
    assert server.received[0].header("Host") == f"rebind.test:{server.port}"


def test_checked_address_is_kept_for_a_while_so_connections_are_reused(server):
    calls: list[str] = []
    resolver = resolver_answering("127.0.0.1", "10.0.0.1", calls=calls)

    with Client(resolver=resolver) as session:
        for n in range(3):
            send(session, server.url(f"/hook/{n}", host="cached.test"))

    assert calls == ["cached.test"]
    assert server.connections == 1


def test_ipv6_literal_destination_is_reached_with_a_bracketed_host_header(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["::1/128"]

    class IPv6Server(RecordingServer):
        address_family = socket.AF_INET6

    try:
        server = start(IPv6Server(("::1", 0)))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        with Client() as session:
            send(session, server.url(host="[::1]"))
    finally:
        server.shutdown()
        server.server_close()

    assert server.received[0].header("Host") == f"[::1]:{server.port}"


# --- TLS: the connection goes to the IP, TLS speaks to the name -------------------------


@pytest.fixture
def tls_server(settings, tmp_path):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    ca_path, cert_path, key_path = write_test_pki(tmp_path, "api.osmos-test.example")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server_names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    server = RecordingServer(("127.0.0.1", 0))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.server_names = server_names
    server.ca_path = ca_path
    start(server)
    yield server
    server.shutdown()
    server.server_close()


def test_https_keeps_the_host_name_for_sni_host_header_and_certificate(tls_server):
    resolver = resolver_answering("127.0.0.1")

    with Client(resolver=resolver, ca_bundle=tls_server.ca_path) as session:
        response = send(session, tls_server.url(host="api.osmos-test.example", scheme="https"))

    assert response.status == 200
    assert tls_server.server_names == ["api.osmos-test.example"]
    assert tls_server.received[0].header("Host") == f"api.osmos-test.example:{tls_server.port}"


def test_https_certificate_for_another_name_is_refused(tls_server):
    resolver = resolver_answering("127.0.0.1")

    session = Client(resolver=resolver, ca_bundle=tls_server.ca_path)
    with session, pytest.raises(DeliveryError) as caught:
        send(session, tls_server.url(host="other.osmos-test.example", scheme="https"))

    assert "TLS" in caught.value.message
    assert "certificate" in caught.value.message
    assert tls_server.received == []


def write_test_pki(directory, hostname: str) -> tuple[str, str, str]:
    """A CA and a certificate for `hostname` signed by it; returns the PEM file paths."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject, issuer, public_key, signing_key, *, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
                critical=False,
            )
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False
            ).add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("osmos test CA", "osmos test CA", ca_key.public_key(), ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(hostname, "osmos test CA", key.public_key(), ca_key, ca=False)

    paths = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tuple(str(path) for path in paths)


# --- secrets -----------------------------------------------------------------------------


def all_text(error: DeliveryError) -> str:
    chain, seen = [], error
    while seen is not None:
        chain.append(f"{seen!r} {seen}")
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return " ".join(chain) + error.response_excerpt


@pytest.mark.parametrize(
    "path", ["/status/401", "/status/503?retry_after=5", "/status/302?location=/x"]
)
def test_header_values_never_appear_in_errors_or_logs_when_the_destination_refuses(
    server, session, caplog, path
):
    caplog.set_level(logging.DEBUG)

    with pytest.raises(DeliveryError) as caught:
        send(session, server.url(path), headers=[("Authorization", SECRET)])

    assert server.received[0].header("Authorization") == SECRET
    assert SECRET not in all_text(caught.value)
    assert "s3cr3t" not in caplog.text


def test_header_values_never_appear_in_errors_or_logs_when_the_connection_fails(
    server, session, caplog
):
    caplog.set_level(logging.DEBUG)

    with pytest.raises(DeliveryError) as timed_out:
        send(session, server.url("/sleep?seconds=1"), headers=[("X-Token", SECRET)], timeout=0.2)
    with pytest.raises(DeliveryError) as refused:
        send(session, "http://127.0.0.1:1/", headers=[("X-Token", SECRET)])

    assert SECRET not in all_text(timed_out.value) + all_text(refused.value)
    assert "s3cr3t" not in caplog.text


@pytest.mark.parametrize(
    "value", [SECRET + "\r\nX-Injected: 1", SECRET + "\n", " " + SECRET, SECRET + "\u20ac"]
)
def test_invalid_header_value_fails_permanently_without_quoting_it(server, session, caplog, value):
    caplog.set_level(logging.DEBUG)

    with pytest.raises(DeliveryError) as caught:
        send(session, server.url(), headers=[("Authorization", value)])

    assert caught.value.transient is False
    assert "Authorization" in caught.value.message
    assert "s3cr3t" not in all_text(caught.value)
    assert "s3cr3t" not in caplog.text
    assert server.connections == 0


def test_delivery_error_survives_pickling_with_its_details():
    error = DeliveryError(
        "The destination answered 503.",
        transient=True,
        status=503,
        retry_after=12.0,
        response_excerpt="busy",
    )

    copy = pickle.loads(pickle.dumps(error))

    assert (copy.message, copy.transient, copy.status) == (
        "The destination answered 503.",
        True,
        503,
    )
    assert (copy.retry_after, copy.response_excerpt) == (12.0, "busy")


def test_invalid_header_name_fails_permanently(server, session):
    with pytest.raises(DeliveryError, match="header name") as caught:
        send(session, server.url(), headers=[("Bad Name:", "v")])

    assert caught.value.transient is False
