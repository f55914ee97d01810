"""The per-organization cap on pipelines scheduled every minute (``ORG_MAX_MINUTELY_PIPELINES``).

A schedule "fires every minute" when its minute field matches two consecutive minutes
(``*``, ``*/1``, ``0-59``, ``5,6``, or ``59`` and ``0``): such a pipeline can start a run each
minute, and a tenant with hundreds of them would keep every worker busy. Manual pipelines and
slower schedules are not counted. The check locks the organization row, so two concurrent
saves cannot both take the last slot.
"""

from __future__ import annotations

from croniter import croniter
from django.conf import settings

from osmos.errors import InputError, InvalidInput
from osmos.tenancy.models import Organization


def fires_every_minute(cron: str) -> bool:
    """True when ``cron`` (a valid five-field expression) fires at two consecutive minutes."""
    minutes = croniter.expand(cron)[0][0]
    if "*" in minutes:
        return True
    present = set(minutes)
    return any((m + 1) % 60 in present for m in present) and len(present) > 1


def check_minutely_cap(*, pipeline) -> None:
    """Raise ``InvalidInput`` (on ``schedule``) when saving ``pipeline`` (enabled, every
    minute) would give its organization more than ``ORG_MAX_MINUTELY_PIPELINES`` of them."""
    cap = settings.ORG_MAX_MINUTELY_PIPELINES
    if not cap or not pipeline.enabled or not pipeline.schedule_cron:
        return
    if not fires_every_minute(pipeline.schedule_cron):
        return
    Organization.objects.select_for_update().filter(pk=pipeline.organization_id).first()
    others = (
        type(pipeline)
        .objects.filter(organization_id=pipeline.organization_id, enabled=True)
        .exclude(schedule_cron="")
        .exclude(pk=pipeline.pk)
        .values_list("schedule_cron", flat=True)
    )
    taken = sum(1 for cron in others if fires_every_minute(cron))
    if taken >= cap:
        message = (
            f"This organization already has {taken} enabled pipelines scheduled every "
            f"minute, the most allowed ({cap}). Choose a slower schedule (e.g. "
            "'*/5 * * * *') or disable one of them."
        )
        raise InvalidInput([InputError(field="schedule", message=message)])
