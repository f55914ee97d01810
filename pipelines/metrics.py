"""Run state for ``GET /metrics``, read from the database at scrape time.

Registered with ``osmos.observability.metrics`` by the app's ``ready()``. An operations view
across every organization: no tenant label, and nothing of a tenant's data.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from connectors.models import Connector, DestinationHealth, HealthState
from pipelines.models import ChunkState, Run, RunChunk, RunState


def run_state_metrics() -> Iterator[GaugeMetricFamily]:
    by_state = GaugeMetricFamily("osmos_runs", "Runs, by state.", labels=["state"])
    counts = dict(Run.objects.values_list("state").annotate(n=Count("id")).order_by())
    for state in RunState.values:
        by_state.add_metric([state], counts.get(state, 0))
    yield by_state
    # Queue lag: how long the oldest run handed to the broker has waited for a worker.
    oldest = Run.objects.filter(state=RunState.QUEUED, enqueued_at__isnull=False).aggregate(
        oldest=Min("enqueued_at")
    )["oldest"]
    lag = (timezone.now() - oldest).total_seconds() if oldest else 0.0
    health = GaugeMetricFamily(
        "osmos_destinations", "Destinations, by health (SPEC §5.2).", labels=["health"]
    )
    unhealthy = dict(
        DestinationHealth.objects.values_list("state").annotate(n=Count("pk")).order_by()
    )
    destinations = Connector.objects.filter(direction="destination").count()
    for state in HealthState.values:
        count = unhealthy.get(state, 0)
        if state == HealthState.HEALTHY:  # no health row yet means healthy
            count = destinations - sum(v for k, v in unhealthy.items() if k != state)
        health.add_metric([state], count)
    yield health
    yield GaugeMetricFamily(
        "osmos_waiting_chunks",
        "Chunks waiting for their next attempt on the retry schedule.",
        value=RunChunk.objects.filter(
            state=ChunkState.PENDING, next_attempt_at__isnull=False
        ).count(),
    )
    yield GaugeMetricFamily(
        "osmos_queue_lag_seconds",
        "Age of the oldest queued run handed to the broker (0 when none waits).",
        value=max(lag, 0.0),
    )
