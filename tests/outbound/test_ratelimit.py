"""Reading the waits destinations ask for (pure functions)."""

from __future__ import annotations

import pytest

from osmos.outbound.ratelimit import RateLimit, parse_reset, rate_limit, wait_from_headers

NOW = 1_800_000_000.0  # a Unix time


@pytest.fixture(autouse=True)
def _cap(settings):
    settings.DELIVERY_RETRY_AFTER_CAP_SECONDS = 300


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5", 5),
        ("2.5", 2.5),
        ("0", 0),
        (str(int(NOW) + 30), 30),  # Unix seconds (GitHub)
        (str(int(NOW * 1000) + 4000), 4),  # Unix milliseconds
        ("soon", None),
        ("", None),
        ("-3", 0),
        ("100000", 300),  # capped
    ],
)
def test_reset_values_in_every_common_form(value, seconds):
    assert parse_reset(value, now=NOW) == seconds


def test_reset_as_an_http_date():
    # 2027-01-15T08:00:30Z is Unix time 1800000030.
    assert parse_reset("Fri, 15 Jan 2027 08:00:30 GMT", now=NOW) == 30


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"ratelimit": "limit=100, remaining=0, reset=5"}, RateLimit(0, 5)),
        ({"ratelimit": "limit=100, remaining=40, reset=60"}, RateLimit(40, 60)),
        ({"ratelimit": '"default";r=0;t=7'}, RateLimit(0, 7)),
        ({"ratelimit": '"burst";r=5;t=1, "daily";r=0;t=90'}, RateLimit(0, 90)),
        ({"ratelimit-remaining": "0", "ratelimit-reset": "12"}, RateLimit(0, 12)),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 20)}, RateLimit(0, 20)),
        (
            {
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset-after": "1.5",
                "x-ratelimit-reset": "9",
            },
            RateLimit(0, 1.5),
        ),
        ({"x-ratelimit-remaining": "3"}, RateLimit(3, None)),
        ({"ratelimit-policy": "100;w=60"}, RateLimit(None, None)),
        ({"ratelimit": "garbage"}, RateLimit(None, None)),
        ({}, RateLimit(None, None)),
    ],
)
def test_rate_limit_headers_in_every_draft_shape(headers, expected):
    assert rate_limit(headers, now=NOW) == expected


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [
        (429, {"retry-after": "3"}, 3),
        (503, {"retry-after": "120"}, 120),
        (429, {"ratelimit": "limit=10, remaining=0, reset=4"}, 4),
        (200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "6"}, 6),
        (200, {"x-ratelimit-remaining": "5", "x-ratelimit-reset": "6"}, None),
        (200, {"retry-after": "30"}, None),  # Retry-After means nothing on a success
        (400, {"retry-after": "30"}, None),
        (429, {}, None),
        (429, None, None),
        (429, {"retry-after": "3", "ratelimit": "remaining=0, reset=50"}, 3),
    ],
)
def test_the_wait_a_response_asks_for(status, headers, wait):
    assert wait_from_headers(status, headers, now=NOW) == wait
