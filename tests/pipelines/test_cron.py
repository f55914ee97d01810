"""Cron schedules: shorthands, errors that name the bad field, schedules that never run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipelines import cron


@pytest.mark.parametrize(
    ("given", "stored"),
    [("@daily", "0 0 * * *"), ("@HOURLY", "0 * * * *"), (" 0  7 * * * ", "0 7 * * *")],
)
def test_shorthands_and_spacing_are_stored_as_five_fields(given, stored):
    cron.check_schedule(cron=given, timezone="UTC")
    assert cron.normalize_cron(given) == stored


def test_a_shorthand_fires_like_its_five_fields():
    after = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert cron.next_fire_time(cron="@daily", timezone="UTC", after=after) == datetime(
        2026, 3, 2, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 25 * * *", "The hour field '25' is not valid: use 0-23."),
        ("61 * * * *", "The minute field '61' is not valid: use 0-59."),
        ("0 7 32 * *", "The day of the month field '32' is not valid"),
        ("0 7 * 13 *", "The month field '13' is not valid"),
        ("0 7 * * 8", "The day of the week field '8' is not valid"),
        ("0 7 * *", "has 4"),
        ("@sometimes", "or is one of @annually, @daily"),
        ("0 7 31 2 *", "never runs"),
        ("0 7 30 2 *", "never runs"),
    ],
)
def test_errors_name_what_is_wrong(expression, message):
    with pytest.raises(cron.InvalidSchedule) as raised:
        cron.check_schedule(cron=expression, timezone="UTC")
    assert raised.value.field == "cron"
    assert message in raised.value.message


def test_29_february_runs_every_leap_year():
    cron.check_schedule(cron="0 0 29 2 *", timezone="UTC")
