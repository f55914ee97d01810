"""Test data built through the services, as a customer would build it.

People: an owner and a member of organization A, an outsider (owner of B). Connectors: sources
with records (optionally saved), destinations on loopback, pipelines, and a ``TenantWorld``
holding one object of every kind a tenant can reach. Every fixture in the conftests is built
from these functions; tests import them from here, never from a conftest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from connectors.models import Connector
from connectors.services import ConnectorWithToken, connector_create
from ingest.services import records_ingest, source_save
from osmos.notifications.models import Event, Notification
from osmos.notifications.services import notify
from osmos.tenancy.models import ApiToken, Invitation, Membership, Organization, Role
from osmos.tenancy.services import api_token_create
from pipelines.models import Pipeline, RecordFailure, Run, RunState
from pipelines.services import pipeline_create
from tests.support import schemas

LOOPBACK_HOOK = "http://127.0.0.1:9/hook"  # discard port: nothing answers there
HEADER_SECRET = "Bearer header-secret-3e8d1f0a77"

# --- people -------------------------------------------------------------------------------------


def make_user(email: str):
    return get_user_model().objects.create_user(username=email, email=email, password="pw-" + email)


def make_org(name: str, slug: str) -> Organization:
    return Organization.objects.create(name=name, slug=slug)


def make_member(organization: Organization, email: str, role: str = Role.MEMBER):
    user = make_user(email)
    Membership.objects.create(user=user, organization=organization, role=role)
    return user


def api_client(*, user=None, token: str | None = None) -> APIClient:
    """An API client logged in as ``user`` (session) or carrying an API ``token``."""
    client = APIClient()
    if user is not None:
        client.force_login(user)
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def page_client(user) -> Client:
    """A browser without a browser, logged in as ``user``."""
    client = Client()
    client.force_login(user)
    return client


def make_token(organization: Organization, name: str = "integration") -> str:
    return api_token_create(organization=organization, name=name).secret


# --- connectors ---------------------------------------------------------------------------------


def ingest(connector: Connector, records: Sequence[dict[str, Any]]) -> None:
    """Store ``records`` in a source exactly as the ingest endpoint would."""
    records_ingest(
        source=connector.source,
        body=json.dumps(list(records)).encode(),
        content_type="application/json",
        content_encoding=None,
        idempotency_key=None,
    )
    connector.source.refresh_from_db()


def issue_source(
    organization: Organization, *, name: str = "Orders", schema=schemas.ORDERS
) -> ConnectorWithToken:
    """A new source (``.connector``) with its plain ingest token (``.ingest_token``)."""
    return connector_create(organization=organization, name=name, direction="source", fields=schema)


def make_source(
    organization: Organization,
    *,
    name: str = "Orders",
    schema=schemas.ORDERS,
    records: Sequence[dict[str, Any]] = (),
    save: bool = False,
) -> Connector:
    """A source holding ``records``; ``save``: saved (active), which needs 50 records."""
    connector = issue_source(organization, name=name, schema=schema).connector
    if records:
        ingest(connector, records)
    if save:
        source_save(connector=connector)
    connector.refresh_from_db()
    return connector


def make_destination(
    organization: Organization,
    *,
    name: str = "CRM",
    schema=schemas.CRM,
    url: str = LOOPBACK_HOOK,
    **settings: Any,
) -> Connector:
    """A destination calling ``url`` (loopback: allow it with ``OUTBOUND_ALLOWED_NETWORKS``)."""
    return connector_create(
        organization=organization,
        name=name,
        direction="destination",
        fields=schema,
        destination={"url": url, **settings},
    ).connector


def make_pipeline(organization: Organization, source, destination, **options) -> Pipeline:
    return pipeline_create(
        organization=organization,
        name=options.pop("name", f"{source.name} to {destination.name}"),
        source_id=source.id,
        destination_id=destination.id,
        **options,
    )


# --- one of everything --------------------------------------------------------------------------


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
    invitation: Invitation

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


def build_world(organization, *, member_user, sink_url: str = LOOPBACK_HOOK) -> TenantWorld:
    """One of each kind of tenant object in ``organization`` (an active source with 50
    records, a destination with a secret header, a pipeline, a run with one failure, an API
    token, a membership, a notification)."""
    issued = issue_source(organization, name="World source", schema=schemas.IDS)
    source = issued.connector
    ingest(source, schemas.id_records(50))
    source_save(connector=source)
    destination = make_destination(
        organization,
        name="World destination",
        schema=schemas.IDS,
        url=sink_url,
        headers=[{"name": "Authorization", "value": HEADER_SECRET}],
    )
    pipeline = make_pipeline(organization, source, destination, name="World pipeline")
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
    invitation = Invitation.objects.create(
        organization=organization,
        email="world-invitee@example.com",
        role="member",
        lookup="worldinv",
        token_hash="0" * 64,
        expires_at=timezone.now() + timedelta(days=7),
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
        invitation=invitation,
    )


def add_records(connector: Connector, count: int) -> None:
    """``count`` records written straight to the table (no validation): for tests of deletes
    and counts, where only their number matters."""
    from django.utils import timezone

    from ingest.models import Record

    now = timezone.now()
    Record.objects.bulk_create(
        Record(
            organization=connector.organization,
            connector=connector,
            sequence=n,
            received_at=now,
            data={"email": f"{n}@x.example"},
        )
        for n in range(1, count + 1)
    )
