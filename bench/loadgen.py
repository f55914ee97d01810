"""A small asyncio HTTP/1.1 load generator: N concurrent clients for a fixed time.

Used by ``bench-ingest-small`` (against gunicorn, whose sync workers close every connection,
so each request opens one) and by ``bench-sink`` (against the sink, keep-alive). Every request
is timed; the caller gets the count, statuses and latency percentiles.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    requests: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        """Latency (seconds) below which ``fraction`` of the requests finished."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.per_second, 1),
            "p50_ms": round(self.percentile(0.50) * 1000, 2),
            "p99_ms": round(self.percentile(0.99) * 1000, 2),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2) if self.latencies else 0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
        }


def build_request(
    *, host: str, port: int, path: str, body: bytes, headers: dict[str, str], keep_alive: bool
) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive" if keep_alive else "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; its status and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, close = None, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    if length is None:
        await reader.read()  # until EOF
        return status, False
    await reader.readexactly(length)
    return status, not close


async def _client(
    host: str, port: int, request: bytes, deadline: float, result: LoadResult
) -> None:
    reader = writer = None
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            status, open_ = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
            continue
        result.latencies.append(time.monotonic() - started)
        result.requests += 1
        result.statuses[status] += 1
        if not open_:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _run(
    host: str, port: int, requests: list[bytes], concurrency: int, seconds: float
) -> LoadResult:
    result = LoadResult()
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _client(host, port, requests[i % len(requests)], deadline, result)
            for i in range(concurrency)
        )
    )
    result.seconds = time.monotonic() - started
    return result


def run_load(
    *,
    host: str,
    port: int,
    path: str | list[str],
    body: bytes,
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    keep_alive: bool,
) -> LoadResult:
    """POST ``body`` to ``path`` from ``concurrency`` clients for ``seconds``, timing each.

    With a list of paths, client ``i`` posts to ``path[i % len(path)]``.
    """
    paths = [path] if isinstance(path, str) else path
    requests = [
        build_request(
            host=host, port=port, path=p, body=body, headers=headers, keep_alive=keep_alive
        )
        for p in paths
    ]
    return asyncio.run(_run(host, port, requests, concurrency, seconds))
