"""Destination health (SPEC §5.2): healthy, failing, paused.

- ``healthy`` → ``failing`` when the destination's requests have failed transiently for
  settings.DESTINATION_FAILING_AFTER_SECONDS in a row (``streak_started_at`` is when the
  streak began). While failing, one run at a time may try it (``probe_claim``), when
  ``next_probe_at`` is due; the others wait.
- ``410 Gone`` → ``paused``: nothing is sent until a person resumes it (``destination_resume``).
- The first success (or a resume) makes it ``healthy`` again and sends
  ``destination_recovered``, so that the app that holds waiting work (pipelines) resumes it
  at once. This module imports nothing above connectors: the receiver is registered by the
  pipelines app.

Every write locks the health row, so concurrent runs agree on the state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from connectors.models import Connector, DestinationHealth, HealthState
from connectors.notify import destination_health_notify
from osmos.errors import Conflict

# Sent (after the commit) with ``connector_id`` when a failing or paused destination becomes
# healthy: its waiting work may go now.
destination_recovered = Signal()

ERROR_MAX_CHARS = 2000


class NotPaused(Conflict):
    """A resume of a destination that is not paused."""


def health_of(connector: Connector) -> dict[str, Any]:
    """The destination's health as the API shows it: ``{state, since, last_error,
    next_probe_at}`` (a destination that never failed is healthy since its creation)."""
    row = DestinationHealth.objects.filter(connector_id=connector.pk).first()
    if row is None:
        return {
            "state": HealthState.HEALTHY.value,
            "since": connector.created_at,
            "last_error": "",
            "next_probe_at": None,
        }
    return {
        "state": row.state,
        "since": row.since or connector.created_at,
        "last_error": row.last_error,
        "next_probe_at": row.next_probe_at if row.state == HealthState.FAILING else None,
    }


def _locked(connector_id: uuid.UUID) -> DestinationHealth:
    row = DestinationHealth.objects.select_for_update().filter(connector_id=connector_id).first()
    if row is None:
        DestinationHealth.objects.get_or_create(connector_id=connector_id)
        row = DestinationHealth.objects.select_for_update().get(connector_id=connector_id)
    return row


def health_record_failure(
    *, connector_id: uuid.UUID, error: str, next_attempt_at: datetime, now: datetime | None = None
) -> str:
    """Note a transient failure; the state afterwards. ``next_attempt_at`` is when the failed
    work is tried again: while failing, that is the next probe."""
    now = now or timezone.now()
    with transaction.atomic():
        row = _locked(connector_id)
        row.last_error = error[:ERROR_MAX_CHARS]
        row.streak_started_at = row.streak_started_at or now
        failing_after = timedelta(seconds=settings.DESTINATION_FAILING_AFTER_SECONDS)
        if row.state == HealthState.HEALTHY and now - row.streak_started_at >= failing_after:
            row.state, row.since = HealthState.FAILING, now
            _notify(connector_id, HealthState.FAILING, row.last_error)
        if row.state == HealthState.FAILING:
            row.next_probe_at = next_attempt_at
        row.save()
        return row.state


def health_record_success(*, connector_id: uuid.UUID) -> bool:
    """Note a success; True when it ended a failing state (``destination_recovered`` is
    sent after the commit). A paused destination stays paused (only a person resumes it)."""
    plainly_healthy = DestinationHealth.objects.filter(
        connector_id=connector_id, state=HealthState.HEALTHY, streak_started_at__isnull=True
    )
    if plainly_healthy.exists():
        return False  # the common case: nothing to write
    with transaction.atomic():
        row = _locked(connector_id)
        recovered = row.state == HealthState.FAILING
        if row.state == HealthState.PAUSED:
            return False
        if recovered:
            row.state, row.since = HealthState.HEALTHY, timezone.now()
        row.streak_started_at = None
        row.next_probe_at = None
        row.save()
        if recovered:
            _announce(connector_id)
            _notify(connector_id, HealthState.HEALTHY)
        return recovered


def health_pause(*, connector_id: uuid.UUID, error: str) -> None:
    """The destination answered ``410 Gone``: nothing is sent until a person resumes it."""
    with transaction.atomic():
        row = _locked(connector_id)
        if row.state != HealthState.PAUSED:
            row.state, row.since = HealthState.PAUSED, timezone.now()
            _notify(connector_id, HealthState.PAUSED, error)
        row.last_error = error[:ERROR_MAX_CHARS]
        row.next_probe_at = None
        row.save()


@dataclass(frozen=True, slots=True)
class Claim:
    state: str
    retry_at: datetime | None = None
    last_error: str = ""


def probe_claim(*, connector_id: uuid.UUID, hold_seconds: float) -> Claim:
    """May a run send to this destination now? Yes (``retry_at`` None) when it is healthy,
    or failing with its probe due, which this call claims for ``hold_seconds`` (a probe that
    dies leaves it to another run then). Otherwise ``retry_at`` says when to ask again; a
    paused destination: never until a person resumes it (state ``paused``)."""
    now = timezone.now()
    with transaction.atomic():
        row = (
            DestinationHealth.objects.select_for_update().filter(connector_id=connector_id).first()
        )
        if row is None or row.state == HealthState.HEALTHY:
            return Claim(HealthState.HEALTHY.value)
        if row.state == HealthState.PAUSED:
            return Claim(row.state, None, row.last_error)
        if row.next_probe_at is not None and row.next_probe_at > now:
            return Claim(row.state, row.next_probe_at, row.last_error)
        row.next_probe_at = now + timedelta(seconds=hold_seconds)
        row.save(update_fields=["next_probe_at"])
        return Claim(row.state, None, row.last_error)


def destination_resume(*, connector: Connector) -> DestinationHealth:
    """A person resumes a paused destination: it is healthy again and its waiting work goes.
    Raises NotPaused when it is not paused."""
    with transaction.atomic():
        row = (
            DestinationHealth.objects.select_for_update().filter(connector_id=connector.pk).first()
        )
        if row is None or row.state != HealthState.PAUSED:
            raise NotPaused("This destination is not paused.")
        row.state, row.since = HealthState.HEALTHY, timezone.now()
        row.streak_started_at = None
        row.next_probe_at = None
        row.save()
        _announce(connector.pk)
        _notify(connector.pk, HealthState.HEALTHY)
        return row


def _notify(connector_id: uuid.UUID, state: str, detail: str = "") -> None:
    """Tell people (SPEC §5.5): once per incident, in the transaction of the change."""
    connector = Connector.objects.dangerously_unscoped().filter(pk=connector_id).first()
    if connector is not None:
        destination_health_notify(
            organization_id=connector.organization_id,
            connector_id=connector_id,
            name=connector.name,
            state=state,
            detail=detail,
        )


def _announce(connector_id: uuid.UUID) -> None:
    transaction.on_commit(
        lambda: destination_recovered.send(sender=DestinationHealth, connector_id=connector_id)
    )
