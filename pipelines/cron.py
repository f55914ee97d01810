"""Cron schedules in a time zone: validation and the next time a schedule fires."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, croniter


class InvalidSchedule(ValueError):
    """A cron expression or time zone we refuse; ``field`` is "cron" or "timezone"."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


# The common shorthands, stored as the five fields they stand for.
SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of the month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day of the week", "0-6 (Sunday = 0) or sun-sat"),
)
# A schedule that has not fired within this many years never will (e.g. "0 7 31 2 *").
_NEVER_YEARS = 8


def normalize_cron(cron: str) -> str:
    """``cron`` with its white space folded and a shorthand (``@daily``…) spelt out."""
    text = " ".join(cron.split())
    return SHORTHANDS.get(text.lower(), text)


def check_schedule(*, cron: str, timezone: str) -> None:
    """Raise InvalidSchedule unless ``cron`` is a valid schedule that fires, in a known zone.

    The message names what is wrong: the number of fields, the field that is out of range,
    or a schedule that never fires (a date that does not exist, like 31 February).
    """
    if not isinstance(cron, str):
        raise InvalidSchedule("cron", "Enter a cron expression, e.g. '0 7 * * *'.")
    text = normalize_cron(cron)
    fields = text.split()
    if len(fields) != 5:
        raise InvalidSchedule(
            "cron",
            f"A cron expression has five fields (minute hour day month weekday), or is one of "
            f"{', '.join(sorted(SHORTHANDS))}; {cron.strip()!r} has {len(fields)}.",
        )
    for position, (name, allowed) in enumerate(_FIELDS):
        alone = ["*"] * 5
        alone[position] = fields[position]
        if not croniter.is_valid(" ".join(alone)):
            raise InvalidSchedule(
                "cron", f"The {name} field {fields[position]!r} is not valid: use {allowed}."
            )
    if not croniter.is_valid(text):
        raise InvalidSchedule("cron", f"{cron.strip()!r} is not a valid cron expression.")
    try:
        croniter(text, datetime(2000, 1, 1), max_years_between_matches=_NEVER_YEARS).get_next(
            datetime
        )
    except CroniterBadDateError:
        raise InvalidSchedule(
            "cron",
            f"{cron.strip()!r} never runs: no date matches it (e.g. 31 February). "
            "Check the day and the month.",
        ) from None
    if not isinstance(timezone, str) or timezone not in _zone_names():
        raise InvalidSchedule("timezone", f"{timezone!r} is not a known time zone.")


def next_fire_time(*, cron: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` (aware) when the schedule fires, in UTC.

    Wall-clock times are read in ``timezone``, so "0 7 * * *" in Europe/Paris is 07:00 in
    Paris in summer and in winter.
    """
    zone = ZoneInfo(timezone)
    nxt = croniter(normalize_cron(cron), after.astimezone(zone)).get_next(datetime)
    return nxt.astimezone(UTC)


@cache
def _zone_names() -> frozenset[str]:
    try:
        return frozenset(available_timezones() | {"UTC"})
    except ZoneInfoNotFoundError:  # pragma: no cover - no tz database at all
        return frozenset({"UTC"})
