"""The pipelines and runs API (SPEC §6): shapes, validation, permissions, tenant isolation."""

from __future__ import annotations

import uuid

import pytest

from pipelines.models import Pipeline, RecordFailure, Run, RunState
from tests.support.delivery import (
    MAPPING,
    make_destination,
    make_pipeline,
    make_source,
)

PIPELINE_KEYS = {
    "id",
    "name",
    "source",
    "destination",
    "mapping",
    "schedule",
    "sync_mode",
    "enabled",
    "next_run_at",
    "created_at",
    "updated_at",
}
RUN_KEYS = {
    "id",
    "pipeline",
    "trigger",
    "state",
    "records_total",
    "records_delivered",
    "records_failed",
    "requests_made",
    "created_at",
    "started_at",
    "finished_at",
    "waiting_until",
    "last_error",
}


@pytest.fixture
def ends(org_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return make_source(org_a), make_destination(org_a, "http://127.0.0.1:9/hook")


@pytest.fixture
def pipeline(org_a, ends):
    return make_pipeline(org_a, *ends)


@pytest.fixture
def ends_b(org_b, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return make_source(org_b, name="B src"), make_destination(org_b, "http://127.0.0.1:9/b")


@pytest.fixture
def pipeline_b(org_b, ends_b):
    return make_pipeline(org_b, *ends_b, name="B pipe")


def _body(ends, **extra):
    source, destination = ends
    return {"name": "Orders", "source": str(source.id), "destination": str(destination.id), **extra}


def test_create_returns_the_pipeline_json_with_same_name_mapping_by_default(api_a, ends):
    response = api_a.post("/api/v1/pipelines/", {**_body(ends), "mapping": MAPPING}, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert set(data) == PIPELINE_KEYS
    assert data["mapping"] == MAPPING
    assert (data["schedule"], data["sync_mode"], data["enabled"]) == (None, "incremental", True)
    assert data["next_run_at"] is None
    assert Pipeline.objects.get(pk=data["id"]).cursor == 0


def test_create_with_a_schedule_computes_the_next_run_in_the_time_zone(api_a, ends):
    body = {
        **_body(ends),
        "mapping": MAPPING,
        "schedule": {"cron": "0 7 * * *", "timezone": "Europe/Paris"},
    }
    data = api_a.post("/api/v1/pipelines/", body, format="json").json()
    assert data["schedule"] == {"cron": "0 7 * * *", "timezone": "Europe/Paris"}
    assert data["next_run_at"].endswith(("T06:00:00Z", "T05:00:00Z"))


def test_omitted_mapping_means_same_names_and_is_refused_when_required_fields_miss(api_a, ends):
    response = api_a.post("/api/v1/pipelines/", _body(ends), format="json")
    assert response.status_code == 400
    assert response.json()["mapping"] == [
        {
            "index": None,
            "field": "total",
            "message": "The required destination field 'total' is not mapped.",
        }
    ]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"id": "id", "email": "email", "total": "nope"}, "'nope' is not a field of the source"),
        ({"id": "id", "email": "email", "total": "amount", "x": "id"}, "'x' is not a field"),
        ({"id": "id", "email": "id", "total": "amount"}, "(integer) cannot feed 'email'"),
        ({"id": "id", "email": "note", "total": "amount"}, "may be null or missing"),
        ({"id": "id", "total": "amount"}, "required destination field 'email'"),
    ],
)
def test_invalid_mappings_are_refused_with_the_field_named(api_a, ends, mapping, message):
    response = api_a.post("/api/v1/pipelines/", {**_body(ends), "mapping": mapping}, format="json")
    assert response.status_code == 400
    items = response.json()["mapping"]
    assert any(message in item["message"] for item in items), response.json()
    assert all(set(item) == {"index", "field", "message"} for item in items)
    assert not Pipeline.objects.exists()


def test_connector_of_another_organization_is_no_such_connector(api_a, ends, ends_b):
    body = {**_body(ends), "source": str(ends_b[0].id), "mapping": MAPPING}
    response = api_a.post("/api/v1/pipelines/", body, format="json")
    assert response.status_code == 400
    assert response.json()["source"] == ["No such connector."]


def test_source_must_be_an_active_source_and_destination_a_destination(api_a, org_a, ends):
    source, destination = ends
    swapped = {**_body(ends), "source": str(destination.id), "destination": str(source.id)}
    response = api_a.post("/api/v1/pipelines/", swapped, format="json")
    assert response.status_code == 400
    assert response.json()["source"] == ["This connector is not a source."]
    assert response.json()["destination"] == ["This connector is not a destination."]


@pytest.mark.parametrize(
    "schedule",
    [{"cron": "every day"}, {"cron": "61 * * * *"}, {"cron": "0 7 * * *", "timezone": "Mars/Base"}],
)
def test_invalid_schedules_are_refused(api_a, ends, schedule):
    body = {**_body(ends), "mapping": MAPPING, "schedule": schedule}
    response = api_a.post("/api/v1/pipelines/", body, format="json")
    assert response.status_code == 400
    assert "schedule" in response.json()


def test_duplicate_name_is_refused(api_a, ends, pipeline):
    body = {**_body(ends), "name": pipeline.name, "mapping": MAPPING}
    response = api_a.post("/api/v1/pipelines/", body, format="json")
    assert response.status_code == 400
    assert response.json()["name"] == ["A pipeline with this name already exists."]


def test_malformed_bodies_are_400_not_500(api_a, ends):
    for body in ([1, 2], "text", {"name": 5, "source": "not-a-uuid"}):
        response = api_a.post("/api/v1/pipelines/", body, format="json")
        assert response.status_code == 400
        assert "detail" in response.json()


def test_patch_changes_schedule_and_enabled_and_keeps_the_rest(api_a, pipeline):
    url = f"/api/v1/pipelines/{pipeline.id}/"
    response = api_a.patch(url, {"schedule": {"cron": "*/5 * * * *"}}, format="json")
    assert response.status_code == 200
    assert response.json()["schedule"] == {"cron": "*/5 * * * *", "timezone": "UTC"}
    assert response.json()["next_run_at"] is not None
    response = api_a.patch(url, {"enabled": False}, format="json")
    assert (response.json()["enabled"], response.json()["next_run_at"]) == (False, None)
    assert response.json()["mapping"] == MAPPING


def test_patch_can_point_the_pipeline_at_another_destination(api_a, pipeline, ends):
    other = make_destination(pipeline.organization, "http://127.0.0.1:9/x", name="Other")
    response = api_a.patch(
        f"/api/v1/pipelines/{pipeline.id}/", {"destination": str(other.id)}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["destination"] == str(other.id)
    assert response.json()["mapping"] == MAPPING


def test_invalid_schedule_errors_are_field_items(api_a, pipeline):
    response = api_a.patch(
        f"/api/v1/pipelines/{pipeline.id}/", {"schedule": {"cron": "61 * * * *"}}, format="json"
    )
    assert response.status_code == 400
    [item] = response.json()["schedule"]
    assert (item["index"], item["field"]) == (None, "cron")
    assert "minute" in item["message"]


def test_put_is_not_allowed(api_a, pipeline):
    assert api_a.put(f"/api/v1/pipelines/{pipeline.id}/", {}, format="json").status_code == 405


def test_delete_removes_the_pipeline_and_refuses_while_a_run_is_active(api_a, pipeline):
    Run.objects.create(organization=pipeline.organization, pipeline=pipeline, trigger="api")
    response = api_a.delete(f"/api/v1/pipelines/{pipeline.id}/")
    assert response.status_code == 409
    assert "in progress" in response.json()["detail"]
    Run.objects.update(state=RunState.SUCCEEDED, finished_at="2025-01-01T00:00:00Z")
    assert api_a.delete(f"/api/v1/pipelines/{pipeline.id}/").status_code == 204
    assert not Pipeline.objects.exists()


def test_deleting_a_connector_used_by_a_pipeline_is_refused_naming_it(api_a, pipeline):
    response = api_a.delete(f"/api/v1/connectors/{pipeline.source_id}/")
    assert response.status_code == 409
    assert pipeline.name in str(response.json())


def test_run_answers_202_with_the_queued_run(api_a, pipeline):
    response = api_a.post(f"/api/v1/pipelines/{pipeline.id}/run/")
    assert response.status_code == 202
    data = response.json()
    assert set(data) == RUN_KEYS
    assert (data["state"], data["trigger"], data["pipeline"]) == ("queued", "api", str(pipeline.id))
    run = Run.objects.get(pk=data["id"])
    assert (run.sequence_from, run.sequence_to) == (0, 50)


def test_a_member_may_run_but_not_change_a_pipeline(member_client, pipeline):
    response = member_client.post(f"/api/v1/pipelines/{pipeline.id}/run/")
    assert response.status_code == 202
    assert response.json()["trigger"] == "manual"
    response = member_client.patch(
        f"/api/v1/pipelines/{pipeline.id}/", {"name": "x"}, format="json"
    )
    assert response.status_code == 403
    assert member_client.delete(f"/api/v1/pipelines/{pipeline.id}/").status_code == 403


def test_anonymous_callers_are_refused(client, pipeline):
    assert client.get("/api/v1/pipelines/").status_code in (401, 403)


def test_runs_are_listed_newest_first_and_filtered_by_pipeline_and_state(api_a, pipeline):
    org = pipeline.organization
    old = Run.objects.create(organization=org, pipeline=pipeline, trigger="api", state="failed")
    new = Run.objects.create(organization=org, pipeline=pipeline, trigger="api")
    data = api_a.get("/api/v1/runs/").json()
    assert [r["id"] for r in data["results"]] == [str(new.id), str(old.id)]
    data = api_a.get("/api/v1/runs/", {"state": "failed"}).json()
    assert [r["id"] for r in data["results"]] == [str(old.id)]
    data = api_a.get("/api/v1/runs/", {"pipeline": str(uuid.uuid4())}).json()
    assert data["count"] == 0
    assert api_a.get("/api/v1/runs/", {"state": "bogus"}).status_code == 400
    assert api_a.get("/api/v1/runs/", {"pipeline": "nope"}).status_code == 400


def _finished_run_with_failures(pipeline, count=3):
    org = pipeline.organization
    run = Run.objects.create(
        organization=org,
        pipeline=pipeline,
        trigger="api",
        state=RunState.PARTIALLY_FAILED,
        sequence_from=0,
        sequence_to=50,
        records_total=50,
        records_delivered=50 - count,
        records_failed=count,
        finished_at="2025-01-01T00:00:00Z",
        planned_at="2025-01-01T00:00:00Z",
    )
    for sequence in range(1, count + 1):
        RecordFailure.objects.create(
            organization=org,
            run=run,
            sequence=sequence,
            record={"id": sequence},
            reason='=HYPERLINK("x")' if sequence == 1 else "The destination answered 422.",
            http_status=422,
            response_excerpt='{"error": "bad"}',
        )
    return run


def test_failures_are_paginated_json(api_a, pipeline):
    run = _finished_run_with_failures(pipeline)
    data = api_a.get(f"/api/v1/runs/{run.id}/failures/").json()
    assert data["count"] == 3
    assert data["results"][1] == {
        "sequence": 2,
        "record": {"id": 2},
        "reason": "The destination answered 422.",
        "http_status": 422,
        "response_excerpt": '{"error": "bad"}',
    }


def test_failures_stream_as_csv_with_formulas_neutralized(api_a, pipeline):
    run = _finished_run_with_failures(pipeline)
    response = api_a.get(f"/api/v1/runs/{run.id}/failures/?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == "sequence,http_status,reason,response_excerpt,record"
    assert lines[1].startswith("1,422,\"'=HYPERLINK")
    assert lines[2] == '2,422,The destination answered 422.,"{""error"": ""bad""}","{""id"":2}"'
    assert len(lines) == 4


def test_retry_failed_creates_a_retry_run_of_exactly_the_failed_records(api_a, pipeline):
    run = _finished_run_with_failures(pipeline, count=3)
    response = api_a.post(f"/api/v1/runs/{run.id}/retry-failed/")
    assert response.status_code == 202
    assert response.json()["trigger"] == "retry"
    retry = Run.objects.get(pk=response.json()["id"])
    assert (retry.parent_id, retry.sequence_from, retry.sequence_to) == (run.id, 0, 3)
    again = api_a.post(f"/api/v1/runs/{run.id}/retry-failed/")
    assert again.status_code == 409
    assert again.json()["detail"] == "A retry of this run is already in progress."


def test_retry_failed_is_409_when_nothing_failed_or_the_run_is_not_finished(api_a, pipeline):
    org = pipeline.organization
    clean = Run.objects.create(
        organization=org,
        pipeline=pipeline,
        trigger="api",
        state=RunState.SUCCEEDED,
        finished_at="2025-01-01T00:00:00Z",
    )
    running = Run.objects.create(
        organization=org, pipeline=pipeline, trigger="api", state=RunState.RUNNING
    )
    for run in (clean, running):
        response = api_a.post(f"/api/v1/runs/{run.id}/retry-failed/")
        assert response.status_code == 409
        assert response.json()["detail"]


def test_cancel_is_409_for_a_finished_run(api_a, pipeline):
    run = _finished_run_with_failures(pipeline)
    assert api_a.post(f"/api/v1/runs/{run.id}/cancel/").status_code == 409


def test_a_refused_change_is_a_problem_document_with_the_services_message(api_a, pipeline):
    run = _finished_run_with_failures(pipeline)
    response = api_a.post(f"/api/v1/runs/{run.id}/cancel/")
    assert response["Content-Type"] == "application/problem+json"
    assert set(response.json()) == {"type", "title", "status", "detail"}
    assert (response.json()["status"], response.json()["title"]) == (409, "Conflict")
    assert response.json()["detail"]


def test_every_endpoint_answers_404_for_another_organizations_objects(
    api_b, outsider_client, pipeline, pipeline_b
):
    run = _finished_run_with_failures(pipeline)
    for client in (outsider_client, api_b):
        pid, rid = pipeline.id, run.id
        assert client.get(f"/api/v1/pipelines/{pid}/").status_code == 404
        assert (
            client.patch(f"/api/v1/pipelines/{pid}/", {"name": "x"}, format="json").status_code
            == 404
        )
        assert client.delete(f"/api/v1/pipelines/{pid}/").status_code == 404
        assert client.post(f"/api/v1/pipelines/{pid}/run/").status_code == 404
        assert client.get(f"/api/v1/runs/{rid}/").status_code == 404
        assert client.get(f"/api/v1/runs/{rid}/failures/").status_code == 404
        assert client.get(f"/api/v1/runs/{rid}/failures/?format=csv").status_code == 404
        assert client.post(f"/api/v1/runs/{rid}/retry-failed/").status_code == 404
        assert client.post(f"/api/v1/runs/{rid}/cancel/").status_code == 404
        assert client.post(f"/api/v1/connectors/{pipeline.destination_id}/test/").status_code == 404
        assert client.get("/api/v1/pipelines/").json()["count"] == 1  # only its own
        assert client.get("/api/v1/runs/").json()["count"] == 0
    assert Pipeline.objects.get(pk=pipeline.id).name == pipeline.name
    assert Run.objects.filter(pipeline=pipeline).count() == 1


def test_openapi_schema_documents_the_pipeline_endpoints(api_a):
    response = api_a.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/v1/pipelines/",
        "/api/v1/pipelines/{id}/run/",
        "/api/v1/runs/{id}/failures/",
        "/api/v1/runs/{id}/retry-failed/",
        "/api/v1/connectors/{id}/test/",
    ):
        assert path in paths, path


def test_ids_that_are_not_uuids_are_404(api_a):
    for url in ("/api/v1/pipelines/nope/", "/api/v1/runs/nope/", "/api/v1/runs/1/failures/"):
        response = api_a.get(url)
        assert response.status_code == 404
        assert response.json()["detail"]
