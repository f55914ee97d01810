"""Large bodies on PostgreSQL are validated while the server parses their records
(``services.OVERLAPPED_BODY_BYTES``): the answers, their order and "nothing stored" must be
exactly those of a body validated before storing."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.test import Client

from connectors.models import SourceSettings
from ingest.models import Record
from ingest.services import OVERLAPPED_BODY_BYTES
from tests.support.bodies import as_array, ingest_path
from tests.support.schemas import order_records as make_records

pytestmark = pytest.mark.django_db

COUNT = 8_000  # ~500 KB of JSON: over the threshold


def post(token: str, records: list[dict]):
    body = as_array(records)
    assert len(body) >= OVERLAPPED_BODY_BYTES
    return Client().post(ingest_path(token), body, content_type="application/json")


def assert_nothing_stored(source) -> None:
    assert not Record.objects.filter(connector=source).exists()
    row = SourceSettings.objects.get(connector=source)
    assert (row.last_sequence, row.record_count) == (0, 0)


def test_a_large_valid_body_is_stored_once_in_order(source, token):
    response = post(token, make_records(COUNT))
    assert response.json() == {"accepted": COUNT, "sample_count": COUNT, "state": "ready"}
    ids = list(Record.objects.filter(connector=source).order_by("sequence").values_list("data__id"))
    assert ids == [(i,) for i in range(COUNT)]


@pytest.mark.parametrize("bad_at", [0, COUNT // 2, COUNT - 1])
def test_one_invalid_record_anywhere_in_a_large_body_stores_nothing(source, token, bad_at):
    records = make_records(COUNT)
    records[bad_at]["id"] = "not a number"
    response = post(token, records)
    assert response.status_code == 422
    assert [error["index"] for error in response.json()["errors"]] == [bad_at]
    assert_nothing_stored(source)
    assert post(token, make_records(COUNT)).status_code == 200  # the connector is usable


def test_a_large_body_over_the_quota_is_429_and_stores_nothing(source, token, settings):
    settings.ORG_MAX_STORED_RECORDS = COUNT - 1
    response = post(token, make_records(COUNT))
    assert response.status_code == 429
    assert response["Retry-After"]
    assert_nothing_stored(source)


def test_a_large_body_both_invalid_and_over_the_quota_is_refused_for_its_records(
    source, token, settings
):
    settings.ORG_MAX_STORED_RECORDS = COUNT - 1
    records = make_records(COUNT)
    records[-1]["email"] = None
    assert post(token, records).status_code == 422  # validation first, as for small bodies
    assert_nothing_stored(source)


@pytest.mark.skipif(not django_settings.DATABASE_IS_POSTGRES, reason="COPY: PostgreSQL")
def test_a_record_with_a_nul_in_a_large_body_is_refused_by_the_validator(source, token):
    records = make_records(COUNT)
    records[COUNT - 10]["email"] = "a\u0000b@x"
    response = post(token, records)
    assert response.status_code == 422
    assert response.json()["errors"][0]["index"] == COUNT - 10
    assert_nothing_stored(source)
