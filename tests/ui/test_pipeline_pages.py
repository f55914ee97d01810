"""Pipeline pages: list, builder (pick, mapping, schedule), pipeline page, run page."""

from __future__ import annotations

import pytest

from pipelines.models import Pipeline, RecordFailure, Run
from pipelines.services import pipeline_create
from tests.support.pages import make_destination, make_source

pytestmark = pytest.mark.django_db

MAPPING = {"id": "id", "email": "email", "total": "amount"}


def body(response) -> str:
    return response.content.decode()


@pytest.fixture
def ends(org_a):
    return make_source(org_a, count=50, save=True), make_destination(org_a)


@pytest.fixture
def pipeline(org_a, ends):
    source, destination = ends
    return pipeline_create(
        organization=org_a,
        name="Orders to CRM",
        source_id=source.pk,
        destination_id=destination.pk,
        mapping=MAPPING,
    )


def builder_post(source, destination, **overrides) -> dict:
    data = {
        "source": str(source.pk),
        "destination": str(destination.pk),
        "name": "Nightly",
        "map_id": "id",
        "map_email": "email",
        "map_total": "amount",
        "schedule": "daily",
        "cron": "",
        "timezone": "Europe/Paris",
        "sync_mode": "incremental",
        "enabled": "on",
    }
    data.update(overrides)
    return data


def finished_run_with_failures(pipeline, *, failed: int = 2) -> Run:
    """A finished run as the delivery engine leaves it (written directly: page setup only)."""
    run = Run.objects.create(
        organization=pipeline.organization,
        pipeline=pipeline,
        trigger="manual",
        state="partially_failed",
        sequence_from=0,
        sequence_to=50,
        records_total=50,
        records_delivered=50 - failed,
        records_failed=failed,
        requests_made=3,
    )
    run.finished_at = run.created_at
    run.save()
    for sequence in range(1, failed + 1):
        RecordFailure.objects.create(
            organization=pipeline.organization,
            run=run,
            sequence=sequence,
            record={"id": sequence, "email": f"u{sequence}@x.example", "total": 1.5},
            reason="The destination answered 422 Unprocessable Entity.",
            http_status=422,
        )
    return run


# --- list and builder ---------------------------------------------------------------------------


def test_empty_pipeline_list_says_what_to_do(owner_page):
    assert "Build your first pipeline" in body(owner_page.get("/pipelines/"))


def test_list_shows_pipelines_with_their_last_run(owner_page, pipeline, org_b):
    finished_run_with_failures(pipeline)
    html = body(owner_page.get("/pipelines/"))
    assert "Orders to CRM" in html
    assert "partially failed" in html


def test_pick_step_lists_only_active_sources_and_destinations(owner_page, org_a, org_b, ends):
    make_source(org_a, name="Not saved yet", count=3)
    make_destination(org_b, name="Their API")
    html = body(owner_page.get("/pipelines/new/"))
    assert "Orders" in html
    assert "CRM" in html
    assert "Not saved yet" not in html
    assert "Their API" not in html


def test_pick_step_without_an_active_source_explains_how_to_get_one(owner_page, org_a):
    make_source(org_a, count=3)
    assert "No active source yet" in body(owner_page.get("/pipelines/new/"))


def test_builder_with_another_organizations_connector_goes_back_to_picking(owner_page, org_b, ends):
    source, _ = ends
    theirs = make_destination(org_b, name="Theirs")
    response = owner_page.get("/pipelines/new/", {"source": source.pk, "destination": theirs.pk})
    assert response.status_code == 200
    html = body(response)
    assert "Choose an active source and a destination" in html
    assert "Theirs" not in html


def test_builder_defaults_the_mapping_to_same_names_and_warns_about_the_rest(owner_page, ends):
    source, destination = ends
    html = body(
        owner_page.get("/pipelines/new/", {"source": source.pk, "destination": destination.pk})
    )
    assert '<option value="email" data-type="string" data-nullable="false" selected>' in html
    assert "Required field: choose a source field." in html  # total has no same-name source
    assert "user1@example.com" in html  # the mapped preview


def test_builder_creates_a_pipeline_with_mapping_schedule_and_sync_mode(owner_page, org_a, ends):
    source, destination = ends
    response = owner_page.post("/pipelines/new/", builder_post(source, destination))
    pipeline = Pipeline.objects.get(organization=org_a, name="Nightly")
    assert response["Location"] == f"/pipelines/{pipeline.pk}/"
    assert pipeline.mapping == MAPPING
    assert (pipeline.schedule_cron, pipeline.schedule_timezone) == ("0 7 * * *", "Europe/Paris")
    assert pipeline.next_run_at is not None


def test_builder_shows_a_type_mismatch_next_to_its_row_and_creates_nothing(owner_page, org_a, ends):
    source, destination = ends
    response = owner_page.post(
        "/pipelines/new/", builder_post(source, destination, map_total="email")
    )
    assert response.status_code == 400
    html = body(response)
    row = html.split('id="map-warning-3"')[1].split("</td>")[0]
    assert "cannot feed" in row
    assert not Pipeline.objects.filter(organization=org_a).exists()


def test_builder_shows_a_bad_cron_expression_next_to_the_field(owner_page, org_a, ends):
    source, destination = ends
    response = owner_page.post(
        "/pipelines/new/", builder_post(source, destination, schedule="custom", cron="every day")
    )
    assert response.status_code == 400
    assert 'id="cron-errors"' in body(response)
    assert not Pipeline.objects.filter(organization=org_a).exists()


def test_builder_preview_shows_mapped_records_and_the_next_three_runs(owner_page, ends):
    source, destination = ends
    response = owner_page.get(
        "/pipelines/builder-preview/",
        builder_post(source, destination, map_total="", schedule="custom", cron="30 6 * * *"),
    )
    html = body(response)
    assert "user1@example.com" in html
    assert html.count("<li>") == 3
    assert 'hx-swap-oob="true"' in html


def test_builder_preview_of_another_organizations_connectors_is_404(outsider_page, ends):
    source, destination = ends
    response = outsider_page.get(
        "/pipelines/builder-preview/", {"source": source.pk, "destination": destination.pk}
    )
    assert response.status_code == 404


def test_member_cannot_build_edit_or_delete_pipelines(member_page, org_a, ends, pipeline):
    source, destination = ends
    assert member_page.get("/pipelines/new/").status_code == 403
    response = member_page.post("/pipelines/new/", builder_post(source, destination))
    assert response.status_code == 403
    assert member_page.post(f"/pipelines/{pipeline.pk}/edit/", {"name": "x"}).status_code == 403
    assert member_page.post(f"/pipelines/{pipeline.pk}/delete/").status_code == 403
    assert list(Pipeline.objects.filter(organization=org_a)) == [pipeline]
    assert "Edit" not in body(member_page.get(f"/pipelines/{pipeline.pk}/")).split("Setup")[0]


def test_edit_changes_the_schedule_and_keeps_the_connectors(owner_page, pipeline):
    source, destination = pipeline.source, pipeline.destination
    form = body(owner_page.get(f"/pipelines/{pipeline.pk}/edit/"))
    assert "Save pipeline" in form
    response = owner_page.post(
        f"/pipelines/{pipeline.pk}/edit/",
        builder_post(source, destination, name="Renamed", schedule="manual"),
    )
    assert response.status_code == 302
    pipeline.refresh_from_db()
    assert pipeline.name == "Renamed"
    assert pipeline.schedule_cron == ""


def test_delete_removes_the_pipeline(owner_page, pipeline):
    assert "cannot be undone" in body(owner_page.get(f"/pipelines/{pipeline.pk}/delete/"))
    assert owner_page.post(f"/pipelines/{pipeline.pk}/delete/").status_code == 302
    assert not Pipeline.objects.filter(pk=pipeline.pk).exists()


def test_delete_is_refused_while_a_run_is_active_and_says_why(owner_page, pipeline):
    Run.objects.create(organization=pipeline.organization, pipeline=pipeline, trigger="manual")
    response = owner_page.post(f"/pipelines/{pipeline.pk}/delete/")
    assert response.status_code == 302
    assert response["Location"] == f"/pipelines/{pipeline.pk}/"
    assert "in progress" in body(owner_page.get(response["Location"]))
    assert Pipeline.objects.filter(pk=pipeline.pk).exists()


# --- runs -----------------------------------------------------------------------------------------


def test_member_runs_a_pipeline_now(member_page, pipeline):
    response = member_page.post(f"/pipelines/{pipeline.pk}/run/")
    run = Run.objects.get(pipeline=pipeline)
    assert response["Location"] == f"/pipelines/runs/{run.pk}/"
    assert run.trigger == "manual"
    assert (run.sequence_from, run.sequence_to) == (0, 50)


def test_pipeline_page_lists_runs_with_state_and_counts(owner_page, pipeline):
    run = finished_run_with_failures(pipeline, failed=3)
    html = body(owner_page.get(f"/pipelines/{pipeline.pk}/"))
    assert f"/pipelines/runs/{run.pk}/" in html
    assert "partially failed" in html
    assert '<strong style="color:var(--bad)">3</strong>' in html


def test_run_page_shows_failed_records_csv_link_and_retry(owner_page, pipeline):
    run = finished_run_with_failures(pipeline)
    html = body(owner_page.get(f"/pipelines/runs/{run.pk}/"))
    assert "The destination answered 422" in html
    assert f"/api/v1/runs/{run.pk}/failures/?format=csv" in html
    assert "Retry failed records" in html
    assert "hx-trigger" not in html  # a finished run is not polled


def test_csv_link_downloads_the_failed_records_with_the_session(owner_page, pipeline):
    run = finished_run_with_failures(pipeline, failed=2)
    response = owner_page.get(f"/api/v1/runs/{run.pk}/failures/?format=csv")
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert lines[0].startswith("sequence")
    assert len(lines) == 3


def test_member_retries_failed_records(member_page, pipeline):
    run = finished_run_with_failures(pipeline)
    response = member_page.post(f"/pipelines/runs/{run.pk}/retry/")
    retry = Run.objects.get(parent=run)
    assert response["Location"] == f"/pipelines/runs/{retry.pk}/"
    assert retry.trigger == "retry"


def test_retrying_a_run_without_failures_says_why(owner_page, pipeline):
    run = finished_run_with_failures(pipeline, failed=0)
    response = owner_page.post(f"/pipelines/runs/{run.pk}/retry/", follow=True)
    assert "no failed records" in body(response)
    assert not Run.objects.filter(parent=run).exists()


def test_active_run_is_polled_and_a_finished_one_refreshes_the_page(owner_page, pipeline):
    run = Run.objects.create(
        organization=pipeline.organization, pipeline=pipeline, trigger="manual", state="running"
    )
    assert "hx-trigger" in body(owner_page.get(f"/pipelines/runs/{run.pk}/"))
    assert "HX-Refresh" not in owner_page.get(f"/pipelines/runs/{run.pk}/status/")
    Run.objects.filter(pk=run.pk).update(state="succeeded")
    assert owner_page.get(f"/pipelines/runs/{run.pk}/status/")["HX-Refresh"] == "true"


def test_member_cannot_cancel_a_run(member_page, pipeline):
    run = Run.objects.create(
        organization=pipeline.organization, pipeline=pipeline, trigger="manual", state="running"
    )
    assert member_page.post(f"/pipelines/runs/{run.pk}/cancel/").status_code == 403
    run.refresh_from_db()
    assert run.state == "running"


def test_owner_cancels_a_running_run(owner_page, pipeline):
    run = Run.objects.create(
        organization=pipeline.organization, pipeline=pipeline, trigger="manual", state="running"
    )
    owner_page.post(f"/pipelines/runs/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.state == "cancelled"


# --- tenancy ------------------------------------------------------------------------------------


def test_another_organizations_pipeline_and_runs_are_404_everywhere(outsider_page, pipeline):
    run = finished_run_with_failures(pipeline)
    for path in ("", "edit/", "delete/"):
        assert outsider_page.get(f"/pipelines/{pipeline.pk}/{path}").status_code == 404
    for path in ("edit/", "run/", "delete/"):
        assert outsider_page.post(f"/pipelines/{pipeline.pk}/{path}").status_code == 404
    for path in ("", "status/"):
        assert outsider_page.get(f"/pipelines/runs/{run.pk}/{path}").status_code == 404
    for path in ("retry/", "cancel/"):
        assert outsider_page.post(f"/pipelines/runs/{run.pk}/{path}").status_code == 404
    assert outsider_page.get(f"/api/v1/runs/{run.pk}/failures/?format=csv").status_code == 404
    assert Run.objects.filter(pipeline=pipeline).count() == 1
    assert Pipeline.objects.filter(pk=pipeline.pk).exists()


def test_malformed_ids_are_404_not_500(owner_page):
    assert owner_page.get("/pipelines/nope/").status_code == 404
    assert owner_page.get("/pipelines/runs/nope/").status_code == 404
    assert owner_page.post("/pipelines/runs/nope/retry/").status_code == 404


def test_a_schedule_that_never_runs_is_explained_in_the_preview_and_on_create(
    owner_page, org_a, ends
):
    source, destination = ends
    impossible = builder_post(source, destination, schedule="custom", cron="0 7 31 2 *")
    preview = owner_page.get("/pipelines/builder-preview/", impossible)
    assert preview.status_code == 200
    assert "never runs" in body(preview)
    created = owner_page.post("/pipelines/new/", impossible)
    assert created.status_code == 400
    assert "never runs" in body(created)
    assert not Pipeline.objects.filter(organization=org_a).exists()


def test_a_cron_shorthand_is_accepted_and_stored_as_five_fields(owner_page, org_a, ends):
    source, destination = ends
    response = owner_page.post(
        "/pipelines/new/", builder_post(source, destination, schedule="custom", cron="@daily")
    )
    assert response.status_code == 302
    assert Pipeline.objects.get(organization=org_a).schedule_cron == "0 0 * * *"
