"""Prometheus metrics: the objects the apps increment, and ``GET /metrics``.

Two kinds:
- **Counters and histograms of this process** (ingest requests by status, records stored,
  delivered/failed records, outbound requests by status class and their durations). In a
  deployment of several processes on a host, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
  directory shared by the web and worker processes of that host (prometheus-client's
  multiprocess mode) and scrape each host's web process.
- **State read from the database at scrape time** (runs by state, queue lag, waiting runs,
  destinations by health): the database is the source of truth, so these are the same
  whichever process is scraped.

No label carries an organization: per-tenant series would grow without bound.
``/metrics`` answers 404 unless settings.METRICS_TOKEN is set, then requires
``Authorization: Bearer <METRICS_TOKEN>`` (compared in constant time).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Iterator

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

INGEST_REQUESTS = Counter(
    "osmos_ingest_requests", "Ingest requests answered, by HTTP status.", ["status"]
)
INGEST_RECORDS = Counter("osmos_ingest_records", "Records stored by ingest requests.")
DELIVERY_RECORDS = Counter(
    "osmos_delivery_records", "Records whose delivery ended, by outcome.", ["outcome"]
)
DELIVERY_REQUESTS = Counter(
    "osmos_delivery_requests",
    "Requests made to destinations, by status class (2xx…5xx, or error for no answer).",
    ["status_class"],
)
DELIVERY_REQUEST_SECONDS = Histogram(
    "osmos_delivery_request_duration_seconds",
    "Duration of requests made to destinations.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


def status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status else "error"


# Scrape-time state, registered by the apps that own it (``register_state``): osmos knows
# nothing of runs or destinations. Each callable yields metric families.
_state_sources: list[Callable[[], Iterator[GaugeMetricFamily]]] = []


def register_state(source: Callable[[], Iterator[GaugeMetricFamily]]) -> None:
    if source not in _state_sources:
        _state_sources.append(source)


class _StateCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        for source in _state_sources:
            yield from source()


_STATE = _StateCollector()
REGISTRY.register(_STATE)


def _registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    # Multiprocess mode: this process's own collectors would count it twice.
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(_STATE)
    return registry


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        response = HttpResponse("A valid metrics token is required.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
