"""The source debugger (SPEC §4): refused ingest requests are kept and shown to the customer."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from connectors.services import connector_create
from ingest.models import IngestRejection
from ingest.rejections import rejecting_incidents_close
from osmos.notifications.models import Event, Incident, Notification

SCHEMA = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
]


@pytest.fixture
def issued(org_a):
    return connector_create(
        organization=org_a, name="Shop orders", direction="source", fields=SCHEMA
    )


def post(client, issued, body: bytes, **headers):
    headers.setdefault("content_type", "application/json")
    return client.post(f"/ingest/{issued.ingest_token}/", data=body, **headers)


def test_refusals_are_listed_newest_first_with_their_reasons(client, issued, member_client):
    bad_json = post(client, issued, b'[{"id": 1,')
    wrong_type = post(client, issued, b"<xml/>", content_type="application/xml")
    invalid = post(client, issued, json.dumps([{"id": "x", "email": "a@b.c"}]).encode())
    too_big = post(client, issued, b"[]", HTTP_CONTENT_LENGTH=str(10**12))
    assert [r.status_code for r in (bad_json, wrong_type, invalid, too_big)] == [400, 415, 422, 413]
    assert (
        post(client, issued, json.dumps([{"id": 1, "email": "a@b.c"}]).encode()).status_code == 200
    )

    url = f"/api/v1/connectors/{issued.connector.pk}/rejections/"
    body = member_client.get(url).json()
    assert [r["status"] for r in body["results"]] == [413, 422, 415, 400]
    unprocessable = body["results"][1]
    assert unprocessable["error_count"] == 1
    assert unprocessable["errors"][0]["field"] == "id"
    assert unprocessable["body_excerpt"].startswith('[{"id": "x"')
    assert unprocessable["client_address"] == "127.0.0.1"
    assert body["results"][3]["body_excerpt"] == '[{"id": 1,'
    assert body["counts_24h"] == {"400": 1, "413": 1, "415": 1, "422": 1}
    assert [r["status"] for r in member_client.get(url + "?status=422").json()["results"]] == [422]
    assert member_client.get(url + "?status=abc").status_code == 400


def test_a_gzip_body_is_described_not_dumped(client, issued, member_client):
    body = gzip.compress(b'[{"id": "nope"}]')
    assert post(client, issued, body, HTTP_CONTENT_ENCODING="gzip").status_code == 422
    rejection = IngestRejection.objects.get()
    assert rejection.body_excerpt == "(a gzip body)"


def test_only_the_last_n_refusals_are_kept(client, issued, settings):
    settings.INGEST_REJECTIONS_KEPT = 10
    for i in range(14):
        post(client, issued, b"not json " + str(i).encode())
    kept = list(IngestRejection.objects.order_by("id").values_list("body_excerpt", flat=True))
    assert kept == [f"not json {i}" for i in range(4, 14)]


def test_more_than_ten_refusals_in_an_hour_notify_once(client, issued, org_a):
    for _ in range(25):
        post(client, issued, b"{")
    notifications = Notification.objects.filter(organization=org_a, event=Event.SOURCE_REJECTING)
    assert notifications.count() == 1
    assert "refused 11 requests" in notifications.get().message
    # An hour later the source is calm: the incident closes, and a new burst notifies again.
    IngestRejection.objects.update(created_at=timezone.now() - timedelta(hours=2))
    assert rejecting_incidents_close() == 1
    assert not Incident.objects.filter(closed_at__isnull=True).exists()
    for _ in range(11):
        post(client, issued, b"{")
    assert notifications.count() == 2


def test_an_unknown_token_keeps_nothing(client, db):
    assert (
        client.post(
            "/ingest/osm_" + "x" * 43 + "/", data=b"{", content_type="application/json"
        ).status_code
        == 404
    )
    assert not IngestRejection.objects.exists()


def test_another_organizations_source_is_404_and_a_destination_400(
    client, issued, outsider_client, owner_client, org_a, settings
):
    post(client, issued, b"{")
    url = f"/api/v1/connectors/{issued.connector.pk}/rejections/"
    assert outsider_client.get(url).status_code == 404
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    destination = connector_create(
        organization=org_a,
        name="dst",
        direction="destination",
        fields=SCHEMA,
        destination={"url": "http://127.0.0.1:9/"},
    ).connector
    assert owner_client.get(f"/api/v1/connectors/{destination.pk}/rejections/").status_code == 400


def test_the_source_page_panel_shows_refusals_live(client, issued, member_client, outsider_client):
    post(client, issued, json.dumps([{"id": "x", "email": "a@b.c"}]).encode())
    page = member_client.get(f"/connectors/{issued.connector.pk}/").content.decode()
    assert f"/connectors/{issued.connector.pk}/rejections/" in page
    panel = member_client.get(f"/connectors/{issued.connector.pk}/rejections/").content.decode()
    assert "1 \N{MULTIPLICATION SIGN} 422" in panel
    assert "record 1: <code>id</code>" in panel  # rows counted from 1 for people
    assert outsider_client.get(f"/connectors/{issued.connector.pk}/rejections/").status_code == 404
