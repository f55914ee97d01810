"""Cron schedules in a time zone: validation and the next time a schedule fires."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter


class InvalidSchedule(ValueError):
    """A cron expression or time zone we refuse; ``field`` is "cron" or "timezone"."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def check_schedule(*, cron: str, timezone: str) -> None:
    """Raise InvalidSchedule unless ``cron`` has five valid fields and ``timezone`` is known."""
    if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise InvalidSchedule(
            "cron", "Enter a cron expression of five fields, e.g. '0 7 * * *' (07:00 every day)."
        )
    if not isinstance(timezone, str) or timezone not in _zone_names():
        raise InvalidSchedule("timezone", f"{timezone!r} is not a known time zone.")


def next_fire_time(*, cron: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` (aware) when the schedule fires, in UTC.

    Wall-clock times are read in ``timezone``, so "0 7 * * *" in Europe/Paris is 07:00 in
    Paris in summer and in winter.
    """
    zone = ZoneInfo(timezone)
    nxt = croniter(cron, after.astimezone(zone)).get_next(datetime)
    return nxt.astimezone(UTC)


@cache
def _zone_names() -> frozenset[str]:
    try:
        return frozenset(available_timezones() | {"UTC"})
    except ZoneInfoNotFoundError:  # pragma: no cover - no tz database at all
        return frozenset({"UTC"})
