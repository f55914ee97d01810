"""GET /api/v1/connectors/{id}/records/ and POST /api/v1/connectors/{id}/save/."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from connectors.models import SourceSettings
from ingest.services import records_ingest
from tests.support.bodies import as_array
from tests.support.schemas import order_records as make_records


def ingest(connector, records):
    source = SourceSettings.objects.select_related("connector").get(connector=connector)
    return records_ingest(
        source=source,
        body=as_array(records),
        content_type="application/json",
        content_encoding=None,
        idempotency_key=None,
    )


def records_url(connector) -> str:
    return f"/api/v1/connectors/{connector.pk}/records/"


def save_url(connector) -> str:
    return f"/api/v1/connectors/{connector.pk}/save/"


def state_of(connector) -> str:
    return SourceSettings.objects.get(connector=connector).state


# --- records -------------------------------------------------------------------------------------


def test_the_first_page_of_records_is_the_50_samples_in_order_of_arrival(owner_client, source):
    ingest(source, make_records(30))
    ingest(source, make_records(40, start=30))
    response = owner_client.get(records_url(source))
    assert response.status_code == 200
    page = response.json()
    assert [item["sequence"] for item in page["results"]] == list(range(1, 51))
    assert [item["record"]["id"] for item in page["results"]] == list(range(50))
    assert set(page["results"][0]) == {"sequence", "received_at", "record"}
    assert page["results"][0]["record"] == {"id": 0, "email": "user0@example.com", "amount": 0.0}
    assert page["previous"] is None
    following = owner_client.get(page["next"]).json()
    assert [item["sequence"] for item in following["results"]] == list(range(51, 71))
    assert following["next"] is None
    assert following["previous"] is not None


def test_page_size_can_be_chosen_up_to_1000(owner_client, source):
    ingest(source, make_records(5))
    page = owner_client.get(records_url(source), {"page_size": 2}).json()
    assert [item["sequence"] for item in page["results"]] == [1, 2]
    page = owner_client.get(page["next"]).json()
    assert [item["sequence"] for item in page["results"]] == [3, 4]


def test_records_arriving_between_pages_are_not_skipped(owner_client, source):
    ingest(source, make_records(3))
    page = owner_client.get(records_url(source), {"page_size": 2}).json()
    ingest(source, make_records(1, start=3))
    rest = owner_client.get(page["next"]).json()
    assert [item["sequence"] for item in rest["results"]] == [3, 4]


def test_a_source_without_records_has_an_empty_first_page(api_a, source):
    assert api_a.get(records_url(source)).json()["results"] == []


def test_members_can_list_records(member_client, source):
    ingest(source, make_records(1))
    response = member_client.get(records_url(source))
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


def test_a_destination_has_no_records(owner_client, destination):
    response = owner_client.get(records_url(destination))
    assert response.status_code == 400
    assert "source" in response.json()["detail"]


def test_records_of_another_organization_answer_404(outsider_client, api_b, source):
    ingest(source, make_records(3))
    for client in (outsider_client, api_b):
        response = client.get(records_url(source))
        assert response.status_code == 404
        assert "records" not in response.content.decode()
        assert response.json()["detail"]


def test_records_of_an_unknown_connector_answer_404(owner_client, db):
    response = owner_client.get("/api/v1/connectors/00000000-0000-0000-0000-000000000000/records/")
    assert response.status_code == 404


def test_records_need_authentication(source):
    response = APIClient().get(records_url(source))
    assert response.status_code in (401, 403)
    assert response.json()["detail"]


# --- save ----------------------------------------------------------------------------------------


def test_saving_with_49_samples_answers_409_with_the_count(owner_client, source):
    ingest(source, make_records(49))
    response = owner_client.post(save_url(source))
    assert response.status_code == 409
    body = response.json()
    assert body["sample_count"] == 49
    assert body["samples_required"] == 50
    assert "49 of the 50" in body["detail"]
    assert state_of(source) == "awaiting_samples"


def test_saving_a_source_without_records_answers_409(api_a, source):
    response = api_a.post(save_url(source))
    assert response.status_code == 409
    assert response.json()["sample_count"] == 0


def test_50_samples_make_the_source_ready_and_saving_makes_it_active(owner_client, source):
    ingest(source, make_records(49))
    assert ingest(source, make_records(1, start=49)).body["state"] == "ready"
    response = owner_client.post(save_url(source))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(source.pk)
    assert body["source"]["state"] == "active"
    assert body["source"]["sample_count"] == 50
    assert "ingest_url" not in body["source"]
    assert state_of(source) == "active"


def test_saving_an_active_source_again_changes_nothing(api_a, source):
    ingest(source, make_records(50))
    assert api_a.post(save_url(source)).status_code == 200
    again = api_a.post(save_url(source))
    assert again.status_code == 200
    assert again.json()["source"]["state"] == "active"


def test_members_cannot_save_a_source(member_client, source):
    ingest(source, make_records(50))
    response = member_client.post(save_url(source))
    assert response.status_code == 403
    assert response.json()["detail"]
    assert state_of(source) == "ready"


def test_saving_a_destination_answers_400(owner_client, destination):
    response = owner_client.post(save_url(destination))
    assert response.status_code == 400
    assert "source" in response.json()["detail"]


@pytest.mark.parametrize("client_fixture", ["outsider_client", "api_b"])
def test_saving_another_organizations_source_answers_404(request, client_fixture, source):
    ingest(source, make_records(50))
    response = request.getfixturevalue(client_fixture).post(save_url(source))
    assert response.status_code == 404
    assert state_of(source) == "ready"


def test_save_only_accepts_post(owner_client, source):
    assert owner_client.get(save_url(source)).status_code == 405
    assert owner_client.post(records_url(source)).status_code == 405


def test_the_openapi_schema_documents_records_and_save(owner_client):
    schema = owner_client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    assert "get" in paths["/api/v1/connectors/{id}/records/"]
    save = paths["/api/v1/connectors/{id}/save/"]["post"]
    assert {"200", "409", "404"} <= set(save["responses"])
