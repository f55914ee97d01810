"""Request latency on one kept-alive connection vs a new connection per request.

``python -m tests.embedded.keepalive http://127.0.0.1:8000/login/ [count]`` prints the
median and 95th percentile of each; ``measure`` is what the embedded-mode test asserts on.
"""

from __future__ import annotations

import http.client
import statistics
import sys
import time
from urllib.parse import urlsplit


def _timed(connection: http.client.HTTPConnection, path: str) -> float:
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    assert response.status < 500, response.status
    return (time.perf_counter() - started) * 1000


def measure(url: str, count: int = 100) -> dict[str, dict[str, float]]:
    """Milliseconds per GET of ``url``: ``{"keep_alive"|"new_connection": {"median", "p95"}}``."""
    parts = urlsplit(url)
    path = parts.path or "/"
    kept = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    _timed(kept, path)  # warm up: the first request of a process is slower
    keep_alive = [_timed(kept, path) for _ in range(count)]
    kept.close()
    fresh = []
    for _ in range(count):
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        fresh.append(_timed(connection, path))
        connection.close()

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "median": statistics.median(ordered),
            "p95": ordered[int(len(ordered) * 0.95) - 1],
        }

    return {"keep_alive": summary(keep_alive), "new_connection": summary(fresh)}


if __name__ == "__main__":
    figures = measure(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100)
    for name, values in figures.items():
        print(f"{name:15} median {values['median']:6.2f} ms   p95 {values['p95']:6.2f} ms")
