"""The world of the pipeline and delivery suites: orders delivered to a CRM on loopback.

A saved source of ``schemas.ORDERS_NOTED`` records (ids 1..count), a ``schemas.CRM``
destination that sends batches of 20 with a secret ``Authorization`` header, a pipeline mapping
``amount`` to ``total``, and a deadline-bound wait for a run to finish.
"""

from __future__ import annotations

import time
from typing import Any

from connectors.models import Connector
from connectors.services import connector_create
from ingest.services import source_save
from osmos.tenancy.models import Organization
from pipelines.models import Pipeline, Run
from pipelines.services import pipeline_create
from tests.support import schemas
from tests.support.factories import ingest

SOURCE_SCHEMA = schemas.ORDERS_NOTED
DESTINATION_SCHEMA = schemas.CRM
MAPPING = {"id": "id", "email": "email", "total": "amount"}
SECRET = "Bearer sink-secret-7c1e"

make_records = schemas.noted_order_records


def make_source(organization: Organization, *, name: str = "Orders", count: int = 50) -> Connector:
    """An active source of ``organization`` holding records with ids 1..count (count >= 50)."""
    connector = connector_create(
        organization=organization, name=name, direction="source", fields=SOURCE_SCHEMA
    ).connector
    ingest(connector, make_records(count))
    source_save(connector=connector)
    connector.refresh_from_db()
    return connector


def make_destination(
    organization: Organization, url: str, *, name: str = "CRM", **options: Any
) -> Connector:
    """A destination calling ``url`` in batches of 20 with the ``SECRET`` header (``options``
    override any destination setting)."""
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


def make_pipeline(organization: Organization, source, destination, **options: Any) -> Pipeline:
    return pipeline_create(
        organization=organization,
        name=options.pop("name", "Orders to CRM"),
        source_id=source.id,
        destination_id=destination.id,
        mapping=options.pop("mapping", MAPPING),
        **options,
    )


def wait_for_run(run: Run, *, timeout: float = 20.0) -> Run:
    """The run once finished (finished_at set); fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.finished_at is not None:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run.id} did not finish in {timeout} s: state {run.state}")
