"""The system under test: an isolated PostgreSQL database, gunicorn, Dramatiq workers, the sink.

Everything runs on loopback in production mode (``DEBUG=false`` with a secret key, encryption
keys and allowed hosts). The benchmark database is ``osmos_bench``, dropped and re-created by
each run; the broker is Redis database 2 (flushed by each run). Processes are started in their
own session and stopped by their process group id, never by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
LOG_DIR = REPO / "var" / "bench"
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgres://postgres@127.0.0.1:5432")
DATABASE_NAME = os.environ.get("BENCH_DATABASE", "osmos_bench")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/2")
# 2 cores, shared with PostgreSQL, the sink and the load generator: one gunicorn process per
# core, each with threads to overlap database waits, and keep-alive (gthread). Measured on
# this machine with 16 clients on the JSON baseline view: gthread 2x8 with keep-alive ~750
# req/s against ~165 for 4 sync workers, which close every connection and then wait for the
# client's FIN in gunicorn's close_graceful (36% of a sync worker's samples in py-spy).
GUNICORN_WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", "2"))
GUNICORN_THREADS = int(os.environ.get("BENCH_GUNICORN_THREADS", "8"))
# Fixed, made-up production secrets: the benchmark needs production mode, not secrecy.
_SECRET_KEY = "bench-secret-key-not-for-production-" + "x" * 20
_ENCRYPTION_KEY = "S1hYa2Z3c3R1dnd4eXphYmNkZWZnaGlqa2xtbm9wcXI="


def bench_env() -> dict[str, str]:
    """The environment of every process of the stack (and of the runner's own Django)."""
    return {
        "DATABASE_URL": f"{PG_SERVER}/{DATABASE_NAME}",
        "DRAMATIQ_BROKER_URL": BROKER_URL,
        "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
        "DEBUG": "false",
        "SECRET_KEY": _SECRET_KEY,
        "ENCRYPTION_KEYS": _ENCRYPTION_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Production mode redirects plain HTTP to HTTPS; on loopback there is no TLS proxy.
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "OSMOS_VAR_DIR": str(LOG_DIR / "var"),
    }


def setup_django() -> None:
    """Point this process at the benchmark database and start Django."""
    os.environ.update(bench_env())
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def recreate_database() -> None:
    """Drop and create ``osmos_bench`` (only its own leftover connections are ended)."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            [DATABASE_NAME],
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}"')
        conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def postgres_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


def flush_broker() -> None:
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ManagedProcess:
    """A child process in its own session; ``stop()`` ends its whole process group."""

    def __init__(self, name: str, args: Sequence[str], *, env: dict[str, str] | None = None):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            list(args),
            cwd=REPO,
            env={**os.environ, **bench_env(), **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")

    def descendants(self) -> list[int]:
        """Pids of every process below this one (from /proc)."""
        parents: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
        found, todo = [], [self.pid]
        while todo:
            children = parents.get(todo.pop(), [])
            found += children
            todo += children
        return found

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        self._log.close()


def wait_http(url: str, process: ManagedProcess, *, timeout: float = 60) -> None:
    """Wait until ``url`` answers (any status) while ``process`` is alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.check_alive()
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{process.name} did not answer {url} within {timeout} s")


def gunicorn_shape() -> str:
    return f"{GUNICORN_WORKERS} gthread workers x {GUNICORN_THREADS} threads, keep-alive"


def start_gunicorn(*, port: int, workers: int = GUNICORN_WORKERS) -> ManagedProcess:
    process = ManagedProcess(
        "gunicorn",
        [
            str(VENV_BIN / "gunicorn"),
            "bench.wsgi:application",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            "--worker-class=gthread",
            f"--threads={GUNICORN_THREADS}",
            # 250,000-record requests take seconds; the default 30 s would be close.
            "--timeout=300",
            "--backlog=2048",
            "--log-level=warning",
        ],
    )
    wait_http(f"http://127.0.0.1:{port}/bench/echo/", process)
    return process


def start_workers(*, processes: int = 1, threads: int = 4) -> ManagedProcess:
    """Dramatiq workers on the Redis broker (``manage.py rundramatiq``)."""
    process = ManagedProcess(
        "dramatiq",
        [
            str(VENV_BIN / "python"),
            "manage.py",
            "rundramatiq",
            f"--processes={processes}",
            f"--threads={threads}",
        ],
    )
    time.sleep(2)  # workers fork and connect; a message sent meanwhile just waits in Redis
    process.check_alive()
    return process


class Sink:
    """The sink (``bench/sink.py``) as a separate process, with its control API."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = ManagedProcess(
            "sink", [str(VENV_BIN / "python"), "-m", "bench.sink", f"--port={self.port}"]
        )
        wait_http(f"{self.url}/_sink/stats", self.process, timeout=20)

    def _call(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        data = None if payload is None else orjson.dumps(payload)
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return orjson.loads(response.read())

    def reset(
        self, *, fail_ids: Sequence[int] = (), fail_status: int = 422, track_ids: bool = False
    ) -> None:
        self._call(
            "POST",
            "/_sink/reset",
            {"fail_ids": list(fail_ids), "fail_status": fail_status, "track_ids": track_ids},
        )

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_sink/stats")

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.stop()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int, *, key: str = "VmRSS") -> int:
    """Current (``VmRSS``) or peak (``VmHWM``) resident memory of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} for pid {pid}")


def reset_peak_rss(pid: int) -> None:
    """Make ``VmHWM`` start again from the current RSS (Linux ``clear_refs`` = 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
