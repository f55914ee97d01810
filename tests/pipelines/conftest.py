"""Fixtures of the pipeline tests: a real HTTP sink on loopback, sources with records, a worker.

The sink is the customer's API: a ``ThreadingHTTPServer`` on 127.0.0.1 that records every
request (method, path, headers, body) and answers what the test programs (``sink.respond``
is called with each request and returns ``(status, headers, body)``).

The worker is a real ``dramatiq.Worker`` on the configured broker: the in-process stub
broker by default, Redis when ``DRAMATIQ_BROKER_URL`` says so.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import pytest

from connectors.models import Connector
from connectors.services import connector_create
from ingest.services import records_ingest, source_save
from pipelines.models import Run
from pipelines.services import pipeline_create

SOURCE_SCHEMA = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
    {"name": "amount", "type": "number", "nullable": False},
    {"name": "note", "type": "string", "nullable": True},
]
DESTINATION_SCHEMA = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
    {"name": "total", "type": "number", "nullable": False},
]
MAPPING = {"id": "id", "email": "email", "total": "amount"}
SECRET = "Bearer sink-secret-7c1e"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int = 0

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


Responder = Callable[[Received], tuple[int, dict[str, str], bytes]]


def ok(_request: Received) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, b'{"ok": true}'


@dataclass
class Sink:
    server: http.server.ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    respond: Responder = ok
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def records(self) -> list[dict]:
        """Every record received, in order (arrays flattened)."""
        out: list[dict] = []
        for request in self.received:
            body = request.json()
            out.extend(body if isinstance(body, list) else [body])
        return out


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _handle(self) -> None:
        sink: Sink = self.server.sink  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        request = Received(
            self.command,
            self.path,
            dict(self.headers.items()),
            self.rfile.read(length),
            self.client_address[1],
        )
        with sink.lock:
            sink.received.append(request)
        status, headers, body = sink.respond(request)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_PATCH = _handle

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture
def sink(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    instance = Sink(server=server)
    server.sink = instance  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield instance
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def fast_delivery(settings):
    """A compressed retry schedule (3 attempts in all) and no quick retry, so retry
    tests take a fraction of a second."""
    settings.DELIVERY_RETRY_SCHEDULE = (0.05, 0.05)
    settings.DELIVERY_QUICK_RETRY_SECONDS = 0
    settings.DELIVERY_RETRY_AFTER_CAP_SECONDS = 5


def make_records(count: int, *, start: int = 1) -> list[dict]:
    return [
        {"id": i, "email": f"user{i}@example.com", "amount": i * 1.5, "note": None}
        for i in range(start, start + count)
    ]


def ingest(connector: Connector, records: list[dict]) -> None:
    records_ingest(
        source=connector.source,
        body=json.dumps(records).encode(),
        content_type="application/json",
        content_encoding=None,
        idempotency_key=None,
    )
    connector.source.refresh_from_db()


def make_source(organization, *, name: str = "Orders", count: int = 50) -> Connector:
    """An active source of ``organization`` holding records with ids 1..count (count >= 50)."""
    connector = connector_create(
        organization=organization, name=name, direction="source", fields=SOURCE_SCHEMA
    ).connector
    ingest(connector, make_records(count))
    source_save(connector=connector)
    connector.refresh_from_db()
    return connector


def make_destination(organization, url: str, *, name: str = "CRM", **options) -> Connector:
    destination = {
        "url": url,
        "headers": [{"name": "Authorization", "value": SECRET}],
        "write_mode": "batch",
        "batch_size": 20,
        **options,
    }
    return connector_create(
        organization=organization,
        name=name,
        direction="destination",
        fields=DESTINATION_SCHEMA,
        destination=destination,
    ).connector


def make_pipeline(organization, source, destination, **options):
    return pipeline_create(
        organization=organization,
        name=options.pop("name", "Orders to CRM"),
        source_id=source.id,
        destination_id=destination.id,
        mapping=options.pop("mapping", MAPPING),
        **options,
    )


@pytest.fixture
def broker():
    broker = dramatiq.get_broker()
    broker.flush_all()
    yield broker
    broker.flush_all()


@pytest.fixture
def worker(broker, transactional_db):
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    yield worker
    worker.stop()


def wait_for_run(run: Run, *, timeout: float = 20.0) -> Run:
    """The run once finished (finished_at set); fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.finished_at is not None:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run.id} did not finish in {timeout} s: state {run.state}")
