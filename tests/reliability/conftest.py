"""Fixtures of the reliability tests: one of each kind of tenant object in organization A."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from connectors.models import Connector
from connectors.services import connector_create
from ingest.services import records_ingest, source_save
from osmos.notifications.models import Event, Notification
from osmos.notifications.services import notify
from osmos.tenancy.models import ApiToken, Membership
from pipelines.models import Pipeline, RecordFailure, Run, RunState
from pipelines.services import pipeline_create

SCHEMA = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
]
HEADER_SECRET = "Bearer header-secret-3e8d1f0a77"


def schema_records(count: int, *, start: int = 1) -> list[dict]:
    return [{"id": i, "email": f"user{i}@example.com"} for i in range(start, start + count)]


@dataclass
class TenantWorld:
    """Every kind of object a tenant can reach, all in one organization."""

    source: Connector
    ingest_token: str
    destination: Connector
    pipeline: Pipeline
    run: Run
    failure: RecordFailure
    api_token: ApiToken
    api_token_secret: str
    membership: Membership
    notification: Notification

    def names(self) -> list[str]:
        """Strings that identify these objects: none may appear in another tenant's pages."""
        return [
            self.source.name,
            self.destination.name,
            self.pipeline.name,
            str(self.source.pk),
            str(self.destination.pk),
            str(self.pipeline.pk),
            str(self.run.pk),
            self.api_token.name,
        ]


def build_world(organization, *, member_user, sink_url: str = "http://127.0.0.1:9/hook"):
    """One of each kind of tenant object in ``organization`` (an active source with 50
    records, a destination with a secret header, a pipeline, a run with one failure, an API
    token, a membership)."""
    from osmos.tenancy.services import api_token_create

    issued = connector_create(
        organization=organization, name="World source", direction="source", fields=SCHEMA
    )
    source = issued.connector
    records_ingest(
        source=source.source,
        body=json.dumps(schema_records(50)).encode(),
        content_type="application/json",
        content_encoding=None,
        idempotency_key=None,
    )
    source_save(connector=source)
    destination = connector_create(
        organization=organization,
        name="World destination",
        direction="destination",
        fields=SCHEMA,
        destination={
            "url": sink_url,
            "headers": [{"name": "Authorization", "value": HEADER_SECRET}],
        },
    ).connector
    pipeline = pipeline_create(
        organization=organization,
        name="World pipeline",
        source_id=source.id,
        destination_id=destination.id,
    )
    # Created as it would be after a run finished, without running one (no broker needed).
    run = Run.objects.create(
        organization=organization,
        pipeline=pipeline,
        trigger="manual",
        state=RunState.PARTIALLY_FAILED,
        sequence_from=0,
        sequence_to=50,
        records_total=50,
        records_delivered=49,
        records_failed=1,
    )
    failure = RecordFailure.objects.create(
        organization=organization,
        run=run,
        sequence=7,
        record={"id": 7, "email": "user7@example.com"},
        reason="HTTP 400",
        http_status=400,
        response_excerpt='{"error": "rejected"}',
    )
    token = api_token_create(organization=organization, name="World token")
    membership = Membership.objects.get(user=member_user, organization=organization)
    notification = notify(
        organization_id=organization.pk,
        event=Event.RUN_PARTIALLY_FAILED,
        subject_type="run",
        subject_id=run.pk,
        message="Pipeline “World pipeline”: a run partially failed",
    )
    return TenantWorld(
        source=source,
        ingest_token=issued.ingest_token,
        destination=destination,
        pipeline=pipeline,
        run=run,
        failure=failure,
        api_token=token.token,
        api_token_secret=token.secret,
        membership=membership,
        notification=notification,
    )


@pytest.fixture
def world_a(org_a, member, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return build_world(org_a, member_user=member)


@pytest.fixture(autouse=True)
def loopback_destinations(settings):
    """Destinations here point at sinks on 127.0.0.1, which the address guard allows in tests
    only when listed (the guard itself is tested in tests/connectors and tests/pipelines)."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
