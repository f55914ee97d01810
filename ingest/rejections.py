"""The source debugger: refused ingest requests, kept for the customer to see (SPEC §4).

``rejection_record`` is called by the ingest endpoint for every refusal of a known source
(400, 401, 411, 413, 415, 422, 429…; an unknown token has no source to keep it for). It keeps
the last settings.INGEST_REJECTIONS_KEPT per source (older ones are deleted as new ones come;
retention removes what is older than RETENTION_DAYS) and opens the source's "rejecting"
incident when more than REJECTIONS_PER_HOUR_NOTIFIED were refused within the hour.

It never changes the answer the sender gets: a failure to write the record is logged and the
refusal goes out as it was.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count
from django.utils import timezone

from ingest.models import IngestRejection
from osmos.notifications.models import Event, Incident, SubjectType
from osmos.notifications.services import incident_close, incident_open

logger = logging.getLogger(__name__)

EXCERPT_BYTES = 2048
ERRORS_KEPT = 10
REJECTIONS_PER_HOUR_NOTIFIED = 10
_INCIDENT_KEY = "source:{}:rejecting"


def body_excerpt(body_head: bytes) -> str:
    """The start of a body as text; a compressed body is described, not shown as noise."""
    if body_head[:2] == b"\x1f\x8b":
        return "(a gzip body)"
    return body_head[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def rejection_record(
    *,
    organization_id: uuid.UUID,
    connector_id: uuid.UUID,
    connector_name: str,
    status: int,
    answer: dict[str, Any],
    body_head: bytes,
    client_address: str,
) -> None:
    """Keep one refused request of the source (its answer, the start of its body)."""
    errors = answer.get("errors") or []
    try:
        with transaction.atomic():
            IngestRejection.objects.create(
                organization_id=organization_id,
                connector_id=connector_id,
                status=status,
                detail=str(answer.get("detail", ""))[:2000],
                error_count=int(answer.get("error_total", len(errors))),
                errors=errors[:ERRORS_KEPT],
                body_excerpt=body_excerpt(body_head),
                client_address=client_address[:64],
            )
            _trim(connector_id)
        _notify_if_rejecting(
            organization_id=organization_id, connector_id=connector_id, name=connector_name
        )
    except DatabaseError:
        logger.warning("could not keep a rejected ingest request", exc_info=True)


def _trim(connector_id: uuid.UUID) -> None:
    kept = settings.INGEST_REJECTIONS_KEPT
    oldest_kept = (
        IngestRejection.objects.filter(connector_id=connector_id)
        .order_by("-id")
        .values_list("id", flat=True)[kept - 1 : kept]
    )
    oldest = next(iter(oldest_kept), None)
    if oldest is not None:
        IngestRejection.objects.filter(connector_id=connector_id, id__lt=oldest).delete()


def _last_hour_count(connector_id: uuid.UUID, now: datetime) -> int:
    return IngestRejection.objects.filter(
        connector_id=connector_id, created_at__gte=now - timedelta(hours=1)
    ).count()


def _notify_if_rejecting(*, organization_id: uuid.UUID, connector_id: uuid.UUID, name: str):
    count = _last_hour_count(connector_id, timezone.now())
    if count > REJECTIONS_PER_HOUR_NOTIFIED:
        incident_open(
            organization_id=organization_id,
            key=_INCIDENT_KEY.format(connector_id),
            event=Event.SOURCE_REJECTING,
            subject_type=SubjectType.CONNECTOR,
            subject_id=connector_id,
            message=f"Source “{name}” refused {count} requests within the last hour; "
            "its page lists them with the reasons.",
        )


def rejecting_incidents_close(*, now: datetime | None = None) -> int:
    """Close the "rejecting" incidents of sources that calmed down (the scheduler's tick)."""
    now = now or timezone.now()
    closed = 0
    for incident in Incident.objects.filter(
        closed_at__isnull=True, key__startswith="source:", key__endswith=":rejecting"
    ):
        connector_id = uuid.UUID(incident.key.split(":")[1])
        if _last_hour_count(connector_id, now) <= REJECTIONS_PER_HOUR_NOTIFIED:
            closed += bool(
                incident_close(organization_id=incident.organization_id, key=incident.key)
            )
    return closed


def rejection_counts(*, organization, connector_id: uuid.UUID, since: datetime) -> dict[int, int]:
    """Refused requests of the source since ``since``, by status."""
    rows = (
        IngestRejection.objects.filter(
            organization=organization, connector_id=connector_id, created_at__gte=since
        )
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by("status")
    )
    return dict(rows)
