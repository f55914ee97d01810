"""Bulk insertion (COPY on PostgreSQL, executemany on SQLite), the read selectors, the purge
command and the read-only admin."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone

from connectors.models import SourceSettings
from ingest.models import IdempotencyKey, Record
from ingest.selectors import records_committed_through, records_of, samples_of, source_status
from ingest.services import records_ingest
from ingest.storage import RecordRejected, records_insert
from tests.support.bodies import as_array
from tests.support.schemas import order_records as make_records


def ingest(connector, records, **kwargs):
    source = SourceSettings.objects.select_related("connector").get(connector=connector)
    return records_ingest(
        source=source,
        body=as_array(records),
        content_type="application/json",
        content_encoding=None,
        idempotency_key=kwargs.get("key"),
    )


def test_records_insert_stores_the_json_bytes_with_consecutive_sequences(source):
    now = timezone.now()
    texts = [b'{"a": "tab\\there \\\\ back"}', b'{\n\t"b": [1, 2.5, null, true]\n}', b"{}"]
    with transaction.atomic():
        records_insert(
            organization_id=source.organization_id,
            connector_id=source.pk,
            first_sequence=41,
            received_at=now,
            records=texts,
        )
    rows = list(Record.objects.order_by("sequence").values_list("sequence", "received_at", "data"))
    assert [sequence for sequence, _, _ in rows] == [41, 42, 43]
    assert {received for _, received, _ in rows} == {now}
    assert [data for _, _, data in rows] == [json.loads(text) for text in texts]
    assert set(Record.objects.values_list("organization_id", flat=True)) == {source.organization_id}


def test_records_insert_of_nothing_writes_nothing(source):
    records_insert(
        organization_id=source.organization_id,
        connector_id=source.pk,
        first_sequence=1,
        received_at=timezone.now(),
        records=[],
    )
    assert not Record.objects.exists()


@pytest.mark.skipif(not django_settings.DATABASE_IS_POSTGRES, reason="jsonb refuses \\u0000")
def test_a_record_postgresql_refuses_is_named_by_its_index_and_nothing_is_kept(source):
    records = [b'{"ok": 1}', b'{"ok": 2}', b'{"bad": "\\u0000"}', b'{"ok": 4}']
    with pytest.raises(RecordRejected) as rejected, transaction.atomic():
        records_insert(
            organization_id=source.organization_id,
            connector_id=source.pk,
            first_sequence=1,
            received_at=timezone.now(),
            records=records,
        )
    assert rejected.value.index == 2
    assert "\\u0000" in rejected.value.message or "unsupported" in rejected.value.message
    assert not Record.objects.exists()
    ingest(source, make_records(1))  # the connection is usable afterwards
    assert Record.objects.count() == 1


def test_records_of_reads_a_sequence_range_in_order(org_a, source):
    ingest(source, make_records(10))

    def sequences(**bounds):
        return [r.sequence for r in records_of(organization=org_a, connector=source, **bounds)]

    assert sequences() == list(range(1, 11))
    assert sequences(after=3, through=6) == [4, 5, 6]
    assert sequences(after=8, limit=5) == [9, 10]
    assert sequences(limit=2) == [1, 2]


def test_records_of_another_organization_are_not_read(org_b, source):
    ingest(source, make_records(3))
    assert list(records_of(organization=org_b, connector=source)) == []
    assert source_status(organization=org_b, connector=source) is None
    assert records_committed_through(organization=org_b, connector=source) == 0


def test_samples_are_the_first_50_records(org_a, source):
    ingest(source, make_records(60))
    assert [r.data["id"] for r in samples_of(organization=org_a, connector=source)] == list(
        range(50)
    )


def test_source_status_reports_the_gate(org_a, source):
    ingest(source, make_records(20))
    status = source_status(organization=org_a, connector=source)
    assert (status.state, status.sample_count, status.samples_required) == (
        "awaiting_samples",
        20,
        50,
    )
    assert status.samples_missing == 30


def test_records_committed_through_is_the_last_sequence(org_a, source):
    assert records_committed_through(organization=org_a, connector=source) == 0
    ingest(source, make_records(7))
    assert records_committed_through(organization=org_a, connector=source) == 7


def test_the_purge_command_deletes_expired_keys(source, capsys):
    ingest(source, make_records(1), key="old")
    ingest(source, make_records(1, start=1), key="new")
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(days=2))
    call_command("purge_idempotency_keys")
    assert "Deleted 1 expired" in capsys.readouterr().out
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


@pytest.fixture
def staff_client(db):
    user = get_user_model().objects.create_superuser(username="support", email="s@x", password="pw")
    client = Client()
    client.force_login(user)
    return client


def test_support_can_view_records_and_keys_but_not_change_them(staff_client, source):
    ingest(source, make_records(2), key="k")
    record = Record.objects.first()
    assert staff_client.get("/admin/ingest/record/").status_code == 200
    page = staff_client.get(f"/admin/ingest/record/{record.pk}/change/")
    assert page.status_code == 200
    assert b"user0@example.com" in page.content
    assert staff_client.get("/admin/ingest/record/add/").status_code == 403
    assert (
        staff_client.post(f"/admin/ingest/record/{record.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert Record.objects.count() == 2
    assert staff_client.get("/admin/ingest/idempotencykey/").status_code == 200
