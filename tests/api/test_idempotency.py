"""``Idempotency-Key`` on every API POST (SPEC §6, osmos/idempotency.py): a retry replays the
first answer, another body with the key is 422, a duplicate while the first runs is 409; keys
belong to one organization and one caller, and go after 24 hours."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
import requests
from django.conf import settings as django_settings
from django.http import HttpResponse
from django.utils import timezone

from connectors.models import Connector
from osmos import idempotency
from osmos.models import ApiIdempotencyKey
from pipelines.models import Run
from pipelines.retention import retention_purge
from tests.support import schemas
from tests.support.factories import api_client, build_world, make_destination, make_token
from tests.support.sink import Answer, Sink

PROBLEM = "application/problem+json"
SOURCE = {"name": "Orders", "direction": "source", "schema": schemas.IDS}
postgres_only = pytest.mark.skipif(
    not django_settings.DATABASE_IS_POSTGRES, reason="concurrent requests: PostgreSQL"
)


def key() -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}


@pytest.fixture
def world(org_a, member):
    return build_world(org_a, member_user=member)


@pytest.mark.django_db
def test_a_retried_run_trigger_creates_one_run_and_replays_the_first_answer(api_a, world):
    path = f"/api/v1/pipelines/{world.pipeline.pk}/run/"
    headers = key()
    before = Run.objects.count()
    first = api_a.post(path, **headers)
    again = api_a.post(path, **headers)
    assert first.status_code == again.status_code == 202
    assert "Idempotent-Replayed" not in first
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Run.objects.count() == before + 1
    # Without a key (or with another one) a POST runs again.
    assert api_a.post(path).status_code == 202
    assert api_a.post(path, **key()).status_code == 202
    assert Run.objects.count() == before + 3


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_422_and_changes_nothing(api_a):
    headers = key()
    created = api_a.post("/api/v1/connectors/", SOURCE, format="json", **headers)
    assert created.status_code == 201
    other = api_a.post("/api/v1/connectors/", {**SOURCE, "name": "Other"}, format="json", **headers)
    assert other.status_code == 422
    assert other["Content-Type"] == PROBLEM
    assert "Idempotency-Key" in other.json()["detail"]
    assert not Connector.objects.filter(name="Other").exists()
    # Another path with the key is another request too.
    source_id = created.json()["id"]
    elsewhere = api_a.post(
        f"/api/v1/connectors/{source_id}/rotate-token/", {}, format="json", **headers
    )
    assert elsewhere.status_code == 422


@pytest.mark.django_db
def test_a_refusal_is_replayed_too(api_a):
    headers = key()
    bad = {**SOURCE, "direction": "sideways"}
    first = api_a.post("/api/v1/connectors/", bad, format="json", **headers)
    again = api_a.post("/api/v1/connectors/", bad, format="json", **headers)
    assert first.status_code == again.status_code == 400
    assert again["Idempotent-Replayed"] == "true"
    assert again["Content-Type"] == PROBLEM
    assert again.json() == first.json()


@pytest.mark.django_db
def test_keys_belong_to_one_organization_and_one_caller(org_a, api_a, api_b, owner_client):
    headers = key()
    answers = [
        api_a.post("/api/v1/connectors/", SOURCE, format="json", **headers),
        # Another organization's identical key is independent.
        api_b.post("/api/v1/connectors/", SOURCE, format="json", **headers),
        # So is another token of the same organization, and a signed-in person.
        api_client(token=make_token(org_a, "second integration")).post(
            "/api/v1/connectors/", {**SOURCE, "name": "Orders 2"}, format="json", **headers
        ),
        owner_client.post(
            "/api/v1/connectors/", {**SOURCE, "name": "Orders 3"}, format="json", **headers
        ),
    ]
    assert [a.status_code for a in answers] == [201, 201, 201, 201]
    assert not any(a.has_header("Idempotent-Replayed") for a in answers)
    assert len({a.json()["id"] for a in answers}) == 4
    # Organization B's replay is B's own connector, never A's.
    replay = api_b.post("/api/v1/connectors/", SOURCE, format="json", **headers)
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == answers[1].json()["id"]


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_bad_key_is_a_400_naming_the_header(api_a, value):
    response = api_a.post("/api/v1/connectors/", SOURCE, format="json", HTTP_IDEMPOTENCY_KEY=value)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert not Connector.objects.exists()


@pytest.mark.django_db
def test_a_key_of_255_characters_is_accepted(api_a):
    response = api_a.post(
        "/api/v1/connectors/", SOURCE, format="json", HTTP_IDEMPOTENCY_KEY="k" * 255
    )
    assert response.status_code == 201


@pytest.mark.django_db
def test_after_24_hours_a_key_runs_again_and_retention_deletes_it(api_a, world):
    path = f"/api/v1/pipelines/{world.pipeline.pk}/run/"
    headers = key()
    assert api_a.post(path, **headers).status_code == 202
    ApiIdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    again = api_a.post(path, **headers)
    assert again.status_code == 202
    assert not again.has_header("Idempotent-Replayed")
    assert Run.objects.filter(pipeline=world.pipeline).count() == 3  # the world's, and two
    ApiIdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    report = retention_purge()
    assert report.deleted["api_idempotency_keys"] == 1
    assert not ApiIdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_a_failed_answer_releases_the_key(org_a):
    row = ApiIdempotencyKey.objects.create(
        organization=org_a, caller="user:1", key="k", fingerprint="f", created_at=timezone.now()
    )
    idempotency.complete(row.pk, HttpResponse(status=503))
    assert not ApiIdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_a_claim_abandoned_by_a_dead_process_is_taken_over(api_a, world):
    path = f"/api/v1/pipelines/{world.pipeline.pk}/run/"
    headers = key()
    assert api_a.post(path, **headers).status_code == 202
    # As if the process had died before storing its answer, long ago.
    ApiIdempotencyKey.objects.update(
        response_status=None, created_at=timezone.now() - timedelta(minutes=10)
    )
    assert api_a.post(path, **headers).status_code == 202


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_concurrent_duplicate_is_409_while_the_first_runs(live_server, org_a):
    """Two real requests at once with one key: the destination test holds the first for a
    second (the sink answers slowly); the second is 409, and a retry afterwards replays."""
    token = make_token(org_a)
    with Sink(lambda _request: Answer(delay=1.5)) as sink:
        destination = make_destination(org_a, schema=schemas.IDS, url=sink.url)
        url = f"{live_server.url}/api/v1/connectors/{destination.pk}/test/"
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "test-once"}
        answers: dict[str, requests.Response] = {}

        def post(name: str) -> None:
            answers[name] = requests.post(url, json={}, headers=headers, timeout=30)

        first = threading.Thread(target=post, args=("first",))
        first.start()
        # The second starts once the first is in flight (its claim is committed).
        deadline = timezone.now() + timedelta(seconds=10)
        while not ApiIdempotencyKey.objects.filter(key="test-once").exists():
            assert timezone.now() < deadline
        post("second")
        first.join()
        assert answers["first"].status_code == 200
        assert answers["first"].json()["ok"] is True
        assert answers["second"].status_code == 409
        assert answers["second"].headers["Content-Type"] == PROBLEM
        assert "still being processed" in answers["second"].json()["detail"]
        retry = requests.post(url, json={}, headers=headers, timeout=30)
        assert retry.status_code == 200
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.json() == answers["first"].json()
        assert len(sink.requests) == 1  # the destination was called once


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_run_triggers_with_one_key_create_one_run(live_server, org_a, member):
    world = build_world(org_a, member_user=member)
    token = make_token(org_a)
    url = f"{live_server.url}/api/v1/pipelines/{world.pipeline.pk}/run/"
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "nightly-2025-03-01"}
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def post() -> None:
        barrier.wait()
        statuses.append(requests.post(url, headers=headers, timeout=30).status_code)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(202) >= 1
    assert set(statuses) <= {202, 409}
    assert Run.objects.filter(pipeline=world.pipeline).count() == 2  # the world's and one
