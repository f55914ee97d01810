"""Group commit of small requests and the remembered token lookup (``ingest.group_commit``,
``ingest.token_cache``): requests stored together keep every guarantee of requests stored
alone, and a remembered token never stores a record once it no longer opens its source."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import DataError
from django.test import Client
from django.utils import timezone

from connectors.models import SourceSettings
from connectors.services import connector_update, source_rotate_token
from ingest import group_commit, token_cache
from ingest.models import Record
from osmos.tenancy.models import hash_secret
from tests.support.bodies import as_array, ingest_path
from tests.support.factories import issue_source
from tests.support.schemas import ORDERS
from tests.support.schemas import order_records as make_records

postgres_only = pytest.mark.skipif(
    not django_settings.DATABASE_IS_POSTGRES, reason="the group commit is PostgreSQL's path"
)


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    token_cache.forget_all()
    yield
    token_cache.forget_all()


def post(token: str, records: list[dict], **headers):
    return Client().post(
        ingest_path(token), as_array(records), content_type="application/json", **headers
    )


def stored_ids(connector) -> list[int]:
    return list(
        Record.objects.filter(connector=connector)
        .order_by("sequence")
        .values_list("data__id", flat=True)
    )


# --- the remembered token lookup (both databases) -------------------------------------------------


@pytest.mark.django_db
def test_a_remembered_token_stores_nothing_the_moment_it_is_rotated(source, token):
    assert post(token, make_records(1)).status_code == 200  # looked up and remembered
    new_token = source_rotate_token(connector=source).ingest_token
    refused = post(token, make_records(1, start=1))
    assert refused.status_code == 404
    assert "Unknown ingest URL" in refused.json()["detail"]
    assert post(token, make_records(1, start=2)).status_code == 404  # looked up afresh
    assert post(new_token, make_records(1, start=3)).status_code == 200
    assert stored_ids(source) == [0, 3]


@pytest.mark.django_db
def test_a_remembered_token_keeps_storing_during_its_grace_period_and_not_after(source, token):
    assert post(token, make_records(1)).status_code == 200
    source_rotate_token(connector=source, grace_hours=1)
    assert post(token, make_records(1, start=1)).status_code == 200
    # The grace period ends while the token is still remembered by this process.
    SourceSettings.objects.filter(connector=source).update(
        previous_token_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert post(token, make_records(1, start=2)).status_code == 404
    assert stored_ids(source) == [0, 1]


@pytest.mark.django_db
def test_turning_verification_on_refuses_an_unsigned_request_at_once(source, token):
    assert post(token, make_records(1)).status_code == 200  # remembered: no verification
    connector_update(connector=source, source={"verification": {"scheme": "hmac_sha256"}})
    # Passed the remembered settings (no verification), refused by the write, checked again.
    assert post(token, make_records(1, start=1)).status_code == 401
    assert post(token, make_records(1, start=2)).status_code == 401
    assert stored_ids(source) == [0]


@pytest.mark.django_db
def test_a_deleted_source_remembered_by_the_process_stores_nothing(source, token):
    from connectors.services import connector_delete

    assert post(token, make_records(1)).status_code == 200
    connector_delete(connector=source)
    assert post(token, make_records(1, start=1)).status_code == 404
    assert not Record.objects.exists()


# --- batches (PostgreSQL) -------------------------------------------------------------------------


def pending(connector, records: list[dict], *, token: str | None = None, verification=None):
    row = SourceSettings.objects.get(connector=connector)
    return group_commit.Pending(
        connector_id=connector.pk,
        organization_id=connector.organization_id,
        records=[json.dumps(record) for record in records],
        token_hash=hash_secret(token) if token else None,
        verification=verification or token_cache.verification_of(row),
    )


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_batch_answers_each_request_as_if_stored_one_after_the_other(source, org_a):
    other = issue_source(org_a, name="Other", schema=ORDERS).connector
    first = pending(source, make_records(30))
    second = pending(source, make_records(30, start=30))
    elsewhere = pending(other, make_records(2, start=100))
    group_commit.flush([first, second, elsewhere])
    # The sample gate (50) is crossed by the second request of the batch, not the first.
    assert first.answer == {"accepted": 30, "sample_count": 30, "state": "awaiting_samples"}
    assert second.answer == {"accepted": 30, "sample_count": 60, "state": "ready"}
    assert elsewhere.answer == {"accepted": 2, "sample_count": 2, "state": "awaiting_samples"}
    assert stored_ids(source) == list(range(60))
    assert list(
        Record.objects.filter(connector=source).order_by("sequence").values_list("sequence")
    ) == [(n,) for n in range(1, 61)]
    assert stored_ids(other) == [100, 101]
    row = SourceSettings.objects.get(connector=source)
    assert (row.last_sequence, row.record_count, row.state) == (60, 60, "ready")


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_request_the_database_refuses_fails_alone_and_the_rest_of_its_batch_is_stored(source):
    good = pending(source, make_records(2))
    bad = pending(source, [{"id": 9, "email": "nul\u0000@x", "amount": 1.0}])  # jsonb refuses
    also_good = pending(source, make_records(2, start=2))
    group_commit.flush([good, bad, also_good])
    assert isinstance(bad.error, DataError)
    assert bad.answer is None
    assert good.answer["sample_count"] == 2
    assert also_good.answer["sample_count"] == 4
    assert stored_ids(source) == [0, 1, 2, 3]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_requests_checked_against_a_dead_token_or_old_settings_fail_alone(source, token):
    row = SourceSettings.objects.get(connector=source)
    old_settings = token_cache.verification_of(row)
    connector_update(connector=source, source={"verification": {"scheme": "hmac_sha256"}})
    dead = pending(source, make_records(1), token="osm_" + "x" * 40)
    stale = pending(source, make_records(1, start=1), token=token, verification=old_settings)
    fine = pending(source, make_records(1, start=2), token=token)
    group_commit.flush([dead, stale, fine])
    assert isinstance(dead.error, group_commit.ConnectorGone)
    assert isinstance(stale.error, group_commit.VerificationChanged)
    assert fine.answer == {"accepted": 1, "sample_count": 1, "state": "awaiting_samples"}
    assert stored_ids(source) == [2]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_through_the_committer_are_each_stored_once_in_dense_order(source):
    from django.db import connection

    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)
    answers: list[dict] = []

    def send(worker: int) -> None:
        try:
            barrier.wait()
            for n in range(per_thread):
                start = (worker * per_thread + n) * 3
                item = pending(source, make_records(3, start=start))
                answers.append(group_commit.committer.store(item))
        finally:
            connection.close()

    workers = [threading.Thread(target=send, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = threads * per_thread * 3
    assert sorted(answer["sample_count"] for answer in answers) == list(range(3, total + 1, 3))
    ids = stored_ids(source)
    assert sorted(ids) == list(range(total))
    for offset in range(0, total, 3):  # each request's records together, in order
        assert ids[offset : offset + 3] == list(range(ids[offset], ids[offset] + 3))
    row = SourceSettings.objects.get(connector=source)
    assert (row.last_sequence, row.record_count) == (total, total)


@pytest.mark.django_db
def test_a_refusal_for_a_remembered_token_that_was_rotated_is_404_and_not_kept(source, token):
    from ingest.models import IngestRejection

    assert post(token, make_records(1)).status_code == 200
    source_rotate_token(connector=source)
    refused = post(token, [{"id": "not a number"}])  # would be 422 for a live token
    assert refused.status_code == 404
    assert not IngestRejection.objects.filter(connector=source).exists()
    assert stored_ids(source) == [0]


@pytest.mark.django_db
def test_turning_verification_off_lets_unsigned_requests_in_at_once(source, token):
    connector_update(connector=source, source={"verification": {"scheme": "hmac_sha256"}})
    assert post(token, make_records(1)).status_code == 401  # remembered: verification on
    connector_update(connector=source, source={"verification": {"scheme": "none"}})
    # Refused against the remembered settings, confirmed afresh, checked again: stored.
    assert post(token, make_records(1, start=1)).status_code == 200
    assert stored_ids(source) == [1]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_a_request_is_stored_alone_in_that_transaction(source):
    from django.db import transaction

    item = pending(source, make_records(2))
    answers = []
    with transaction.atomic():
        answers.append(group_commit.committer.store(item))
        assert stored_ids(source) == [0, 1]  # in the caller's transaction...
        transaction.set_rollback(True)
    assert answers[0]["sample_count"] == 2
    assert stored_ids(source) == []  # ...and gone with it: nothing committed behind its back
