"""Small requests are stored by one statement, large ones by COPY: the rows must not differ."""

from __future__ import annotations

import pytest
from django.test import Client

from connectors.models import SourceSettings
from ingest.models import Record
from ingest.services import SMALL_REQUEST_RECORDS
from tests.support.bodies import as_array, ingest_path
from tests.support.schemas import order_records as make_records

pytestmark = pytest.mark.django_db


def post(token: str, records: list[dict], **headers):
    return Client().post(
        ingest_path(token), as_array(records), content_type="application/json", **headers
    )


def test_small_and_large_requests_store_the_same_rows_in_one_dense_sequence(source, token):
    small = make_records(SMALL_REQUEST_RECORDS)
    large = make_records(SMALL_REQUEST_RECORDS + 1, start=SMALL_REQUEST_RECORDS)
    keyed = make_records(3, start=2 * SMALL_REQUEST_RECORDS + 1)
    assert post(token, small).json()["accepted"] == SMALL_REQUEST_RECORDS
    assert post(token, large).json()["accepted"] == SMALL_REQUEST_RECORDS + 1
    assert post(token, keyed, HTTP_IDEMPOTENCY_KEY="k-1").json()["accepted"] == 3
    rows = list(Record.objects.filter(connector=source).order_by("sequence"))
    sent = small + large + keyed
    assert [row.sequence for row in rows] == list(range(1, len(sent) + 1))
    assert [row.data for row in rows] == sent
    assert {row.organization_id for row in rows} == {source.organization_id}
    # received_at never goes backwards along the sequence, whichever path stored the rows.
    times = [row.received_at for row in rows]
    assert times == sorted(times)
    settings_row = SourceSettings.objects.get(connector=source)
    assert (settings_row.last_sequence, settings_row.record_count) == (len(sent), len(sent))


@pytest.mark.parametrize(("first", "state"), [(49, "awaiting_samples"), (50, "ready")])
def test_the_sample_gate_moves_on_the_small_path_exactly_at_fifty(source, token, first, state):
    answer = post(token, make_records(first)).json()
    assert answer == {"accepted": first, "sample_count": first, "state": state}
    assert SourceSettings.objects.get(connector=source).state == state
    answer = post(token, make_records(1, start=first)).json()
    assert answer["state"] == "ready"
