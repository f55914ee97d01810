"""The destination gate across real worker-like processes sharing one PostgreSQL database,
counted at a real loopback sink. Skipped on SQLite: the embedded mode is one process, whose
gate is tested in test_gate.py."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from osmos.outbound.gate import close_all, destination_gate
from tests.outbound.test_gate import max_in_any_window
from tests.reliability.processes import child_env

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.reliability,
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").split(":")[0] not in ("postgres", "postgresql"),
        reason="the gate shares its state between processes on PostgreSQL only; SQLite "
        "(the embedded mode) runs one process, whose gate is tested in test_gate.py",
    ),
]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.server.arrivals.append((time.monotonic(), self.headers.get("X-Sender")))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture
def sink(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.arrivals = []
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def children(tmp_path):
    started: list[subprocess.Popen] = []

    def start(*args: str, **env: str) -> subprocess.Popen:
        log = open(tmp_path / f"child-{len(started)}.log", "w+")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.outbound.gate_child", *args],
            cwd=ROOT,
            env=child_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log = log
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        process.log.close()
    close_all()


def output(process: subprocess.Popen) -> str:
    process.log.seek(0)
    return process.log.read()


def wait_for_line(process: subprocess.Popen, line: str, timeout: float = 60) -> None:
    ends = time.monotonic() + timeout
    while line not in output(process):
        assert process.poll() is None, output(process)
        assert time.monotonic() < ends, f"no {line!r} from the child: {output(process)}"
        time.sleep(0.05)


def test_rate_limit_holds_at_the_sink_with_two_processes(sink, children):
    assert connection.vendor == "postgresql"
    destination = str(uuid.uuid4())
    url = f"http://127.0.0.1:{sink.server_address[1]}/hook"
    senders = [children("send", destination, "20", "8", "4", url, name) for name in ("a", "b")]
    for sender in senders:
        assert sender.wait(timeout=90) == 0, output(sender)

    times = [moment for moment, _ in sink.arrivals]
    assert max_in_any_window(times) <= 20
    assert {name for _, name in sink.arrivals} == {"a", "b"}
    # Both started within a second or two of each other (process start-up): the limit is
    # used, not only respected.
    assert len(times) >= 40


def test_a_pause_set_by_one_process_stops_the_others(sink, children):
    destination = uuid.uuid4()
    url = f"http://127.0.0.1:{sink.server_address[1]}/hook"
    sender = children("send", str(destination), "none", "4", "6", url, "a")
    ends = time.monotonic() + 60
    while not sink.arrivals:
        assert time.monotonic() < ends, output(sender)
        time.sleep(0.05)

    gate = destination_gate(destination, rate_per_second=None, max_concurrency=4)
    gate.observe(429, {"retry-after": "2"})
    paused_at = time.monotonic()
    assert sender.wait(timeout=90) == 0, output(sender)

    # In flight or acquired before the child's next synchronisation (50 ms): a short grace.
    during = [t for t, _ in sink.arrivals if paused_at + 0.3 < t < paused_at + 1.7]
    after = [t for t, _ in sink.arrivals if t > paused_at + 2]
    assert during == []
    assert after, "sending did not resume after the pause"


def test_slots_of_a_killed_process_come_back_after_the_lease(children, settings):
    settings.OUTBOUND_GATE_LEASE_SECONDS = 2
    destination = uuid.uuid4()
    holder = children("hold", str(destination), "2", OUTBOUND_GATE_LEASE_SECONDS="2")
    wait_for_line(holder, "held")
    gate = destination_gate(destination, rate_per_second=None, max_concurrency=2)
    assert gate.acquire(max_wait=0.3) is None  # both slots are the other process's

    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    killed_at = time.monotonic()
    permit = gate.acquire(max_wait=10)

    assert permit is not None
    assert time.monotonic() - killed_at < 2 + 3  # the lease, and a loaded machine's margin
    permit.release()
