"""The ingest endpoint through Django's test client: formats, every status, atomicity,
idempotency and the sample gate. (tests/ingest/test_live.py repeats the key paths over real
HTTP and covers concurrency.)"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from connectors.models import SourceSettings
from connectors.services import source_rotate_token
from ingest.idempotency_keys import idempotency_keys_purge
from ingest.models import IdempotencyKey, Record
from tests.support.bodies import as_array, as_ndjson, gzipped, ingest_path
from tests.support.schemas import order_records as make_records


@pytest.fixture
def client():
    # CSRF checks on, like a browser-less client in production: ingest must not need a token.
    return Client(enforce_csrf_checks=True)


def post(client, token, body: bytes, content_type="application/json", **environ):
    """POST ``body``; headers as WSGI environ keys (``HTTP_IDEMPOTENCY_KEY=...``)."""
    return client.post(ingest_path(token), data=body, content_type=content_type, **environ)


def stored(source) -> list[tuple[int, dict]]:
    return list(
        Record.objects.filter(connector=source).order_by("sequence").values_list("sequence", "data")
    )


def source_row(source) -> SourceSettings:
    return SourceSettings.objects.get(connector=source)


# --- body formats --------------------------------------------------------------------------------


def test_one_json_object_is_stored_as_one_record(client, source, token):
    response = post(client, token, b'{"id": 7, "email": "a@example.com", "amount": null}')
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "sample_count": 1, "state": "awaiting_samples"}
    assert stored(source) == [(1, {"id": 7, "email": "a@example.com", "amount": None})]


def test_a_json_array_is_stored_in_body_order_with_dense_sequences(client, source, token):
    records = make_records(5)
    response = post(client, token, as_array(records))
    assert response.status_code == 200
    assert response.json()["accepted"] == 5
    assert stored(source) == [(i + 1, record) for i, record in enumerate(records)]


def test_every_record_of_a_request_gets_the_same_received_time(client, source, token):
    before = timezone.now()
    post(client, token, as_array(make_records(3)))
    times = set(Record.objects.filter(connector=source).values_list("received_at", flat=True))
    assert len(times) == 1
    assert before <= times.pop() <= timezone.now()


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/jsonl"])
def test_ndjson_is_stored_line_by_line(client, source, token, content_type):
    records = make_records(4)
    response = post(client, token, as_ndjson(records), content_type=content_type)
    assert response.status_code == 200
    assert [data for _, data in stored(source)] == records


def test_a_gzip_body_is_decompressed_and_stored(client, source, token):
    records = make_records(100)
    response = post(client, token, gzipped(as_array(records)), HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200, response.json()
    assert [data for _, data in stored(source)] == records


def test_sequences_continue_across_requests(client, source, token):
    post(client, token, as_array(make_records(3)))
    post(client, token, as_array(make_records(2, start=3)))
    assert [seq for seq, _ in stored(source)] == [1, 2, 3, 4, 5]
    assert [data["id"] for _, data in stored(source)] == [0, 1, 2, 3, 4]
    row = source_row(source)
    assert (row.last_sequence, row.record_count) == (5, 5)


def test_the_url_works_without_the_trailing_slash(client, source, token):
    response = client.post(
        f"/ingest/{token}", data=as_array(make_records(1)), content_type="application/json"
    )
    assert response.status_code == 200
    assert len(stored(source)) == 1


def test_values_are_stored_exactly_as_sent(client, source, token):
    body = b'[{"id": 9007199254740993, "email": "\\u00e9\\\\ \\"q\\"\\n", "amount": 1e-7}]'
    assert post(client, token, body).status_code == 200
    assert stored(source) == [(1, {"id": 9007199254740993, "email": 'é\\ "q"\n', "amount": 1e-7})]


def test_an_empty_array_stores_nothing_and_says_so(client, source, token):
    response = post(client, token, b"[]")
    assert response.status_code == 200
    assert response.json() == {"accepted": 0, "sample_count": 0, "state": "awaiting_samples"}
    assert stored(source) == []


# --- refusals ------------------------------------------------------------------------------------


def assert_refused(response, status: int, *, contains: str = "") -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body["detail"], str)
    assert contains in body["detail"]
    return body


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        (b'[{"id": 1, "email": "a"', "not valid JSON"),
        (b"{'id': 1}", "not valid JSON"),
        (b'"just a string"', "JSON object"),
        (b'{"id": 1, "email": "a"}\n{"id": 2, "email": "b"}', "not valid JSON"),
        (b"\xff\xfe[]", "UTF-8"),
        (b"  \n ", "empty"),
    ],
)
def test_malformed_json_is_refused_with_400_and_nothing_is_stored(
    client, source, token, body, contains
):
    assert_refused(post(client, token, body), 400, contains=contains)
    assert stored(source) == []


def test_a_malformed_ndjson_line_is_named_by_its_number(client, source, token):
    body = b'{"id": 1, "email": "a"}\n\n{"id": 2, "email": \n'
    assert_refused(
        post(client, token, body, content_type="application/x-ndjson"), 400, contains="line 3"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/ingest/osm_" + "A" * 43 + "/",  # well-formed but unknown
        "/ingest/not-a-token/",
        "/ingest/osm_short/",
    ],
)
def test_an_unknown_token_answers_404(client, source, path):
    response = client.post(path, data=b"{}", content_type="application/json")
    assert_refused(response, 404, contains="Unknown ingest URL")


def test_a_rotated_token_answers_404_and_the_new_one_works(client, source, token):
    new_token = source_rotate_token(connector=source).ingest_token
    body = as_array(make_records(1))
    assert_refused(post(client, token, body), 404)
    assert post(client, new_token, body).status_code == 200
    assert len(stored(source)) == 1


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "options"])
def test_other_methods_answer_405_with_allow_post(client, token, method):
    response = getattr(client, method)(ingest_path(token))
    assert_refused(response, 405)
    assert response["Allow"] == "POST"


def test_a_wrong_method_answers_405_even_for_an_unknown_token(client, db):
    assert client.get("/ingest/nope/").status_code == 405


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/json; charset=latin-1"]
)
def test_an_unsupported_content_type_answers_415(client, source, token, content_type):
    assert_refused(post(client, token, b"{}", content_type=content_type), 415)
    assert stored(source) == []


def test_an_unsupported_content_encoding_answers_415(client, source, token):
    body = as_array(make_records(1))
    assert_refused(post(client, token, body, HTTP_CONTENT_ENCODING="br"), 415, contains="br")


def test_a_body_over_the_size_limit_answers_413(client, source, token, settings):
    settings.INGEST_MAX_BODY_BYTES = 2048
    body = as_array(make_records(100))
    assert len(body) > 2048
    refused = assert_refused(post(client, token, body), 413, contains="2048")
    assert refused["max_body_bytes"] == 2048
    assert stored(source) == []


def test_a_gzip_body_over_the_limit_once_decompressed_answers_413(client, source, token, settings):
    settings.INGEST_MAX_BODY_BYTES = 4096
    body = gzipped(as_array(make_records(200)))
    assert len(body) < 4096
    assert_refused(
        post(client, token, body, HTTP_CONTENT_ENCODING="gzip"), 413, contains="decompressed"
    )


def test_more_records_than_allowed_answers_413_with_the_limit(client, source, token, settings):
    settings.INGEST_MAX_RECORDS = 10
    refused = assert_refused(
        post(client, token, as_array(make_records(11))), 413, contains="11 records"
    )
    assert refused["max_records"] == 10
    assert post(client, token, as_array(make_records(10))).status_code == 200


def test_invalid_records_answer_422_with_index_field_and_message(client, source, token):
    records = make_records(4)
    records[1]["id"] = "12"  # no coercion
    records[3]["extra"] = True  # not in the schema
    del records[3]["email"]  # required
    body = assert_refused(post(client, token, as_array(records)), 422)
    assert body["accepted"] == 0
    assert body["error_total"] == 3
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "id"),
        (3, "email"),
        (3, "extra"),
    ]
    assert all(e["message"] for e in body["errors"])
    assert stored(source) == []


def test_array_items_that_are_not_objects_are_invalid_records(client, source, token):
    body = assert_refused(post(client, token, b'[{"id": 1, "email": "a"}, 2]'), 422)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, None)]
    assert "JSON object" in body["errors"][0]["message"]


def test_errors_are_capped_at_100_with_the_total_count(client, source, token):
    records = make_records(300)
    for record in records[:250]:
        record["amount"] = "free"
    body = assert_refused(post(client, token, as_array(records)), 422)
    assert len(body["errors"]) == 100
    assert body["error_total"] == 250
    assert [e["index"] for e in body["errors"]] == list(range(100))


def test_one_invalid_record_at_the_end_of_10000_stores_nothing(client, source, token):
    records = make_records(10_000)
    records[9_999]["email"] = None
    body = assert_refused(post(client, token, as_array(records)), 422)
    assert body["errors"] == [
        {"index": 9_999, "field": "email", "message": body["errors"][0]["message"]}
    ]
    assert Record.objects.filter(connector=source).count() == 0
    row = source_row(source)
    assert (row.last_sequence, row.record_count, row.state) == (0, 0, "awaiting_samples")


# --- idempotency -----------------------------------------------------------------------------


def test_a_retry_with_the_same_key_is_answered_as_the_first_and_stores_nothing(
    client, source, token
):
    body = as_array(make_records(3))
    first = post(client, token, body, HTTP_IDEMPOTENCY_KEY="batch-1")
    post(client, token, as_array(make_records(1, start=3)))  # moves the counts on
    again = post(client, token, body, HTTP_IDEMPOTENCY_KEY="batch-1")
    assert first.status_code == again.status_code == 200
    assert (
        again.json()
        == first.json()
        == {"accepted": 3, "sample_count": 3, "state": "awaiting_samples"}
    )
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert len(stored(source)) == 4


def test_a_retry_sent_gzipped_is_the_same_request(client, source, token):
    body = as_array(make_records(2))
    post(client, token, body, HTTP_IDEMPOTENCY_KEY="k")
    again = post(
        client, token, gzipped(body), HTTP_IDEMPOTENCY_KEY="k", HTTP_CONTENT_ENCODING="gzip"
    )
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert len(stored(source)) == 2


def test_keys_are_per_connector(client, source, token, issued_source_b):
    body = as_array(make_records(2))
    post(client, token, body, HTTP_IDEMPOTENCY_KEY="same")
    other = post(client, issued_source_b.ingest_token, body, HTTP_IDEMPOTENCY_KEY="same")
    assert other.status_code == 200
    assert "Idempotent-Replayed" not in other
    assert Record.objects.filter(connector=issued_source_b.connector).count() == 2


def test_reusing_a_key_for_a_different_body_is_refused_with_422(client, source, token):
    post(client, token, as_array(make_records(2)), HTTP_IDEMPOTENCY_KEY="k")
    refused = post(client, token, as_array(make_records(2, start=2)), HTTP_IDEMPOTENCY_KEY="k")
    body = assert_refused(refused, 422, contains="different request body")
    assert body["accepted"] == 0
    assert len(stored(source)) == 2


def test_a_refused_request_does_not_use_up_its_key(client, source, token):
    records = make_records(2)
    records[0]["id"] = None
    assert post(client, token, as_array(records), HTTP_IDEMPOTENCY_KEY="fix-me").status_code == 422
    records[0]["id"] = 0
    fixed = post(client, token, as_array(records), HTTP_IDEMPOTENCY_KEY="fix-me")
    assert fixed.status_code == 200
    assert "Idempotent-Replayed" not in fixed
    assert len(stored(source)) == 2


def test_a_key_older_than_24_hours_is_forgotten(client, source, token):
    body = as_array(make_records(2))
    post(client, token, body, HTTP_IDEMPOTENCY_KEY="old")
    IdempotencyKey.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(hours=24, seconds=1)
    )
    again = post(client, token, body, HTTP_IDEMPOTENCY_KEY="old")
    assert again.status_code == 200
    assert "Idempotent-Replayed" not in again
    assert len(stored(source)) == 4
    assert IdempotencyKey.objects.filter(key="old").count() == 1  # the expired row was replaced


def test_purge_deletes_only_expired_keys(client, source, token):
    post(client, token, as_array(make_records(1)), HTTP_IDEMPOTENCY_KEY="old")
    post(client, token, as_array(make_records(1, start=1)), HTTP_IDEMPOTENCY_KEY="fresh")
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency_keys_purge() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]


@pytest.mark.parametrize("key", ["x" * 256, "", "tab\there", "é"])
def test_a_malformed_idempotency_key_answers_400(client, source, token, key):
    response = client.post(
        ingest_path(token),
        data=as_array(make_records(1)),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert_refused(response, 400, contains="Idempotency-Key")
    assert stored(source) == []


def test_a_key_of_255_characters_is_accepted(client, source, token):
    response = post(client, token, as_array(make_records(1)), HTTP_IDEMPOTENCY_KEY="k" * 255)
    assert response.status_code == 200


# --- the sample gate -----------------------------------------------------------------------------


def test_49_records_keep_the_source_awaiting_samples_and_the_50th_makes_it_ready(
    client, source, token
):
    first = post(client, token, as_array(make_records(49)))
    assert first.json() == {"accepted": 49, "sample_count": 49, "state": "awaiting_samples"}
    second = post(client, token, as_array(make_records(1, start=49)))
    assert second.json() == {"accepted": 1, "sample_count": 50, "state": "ready"}
    assert source_row(source).state == "ready"


def test_an_active_source_keeps_receiving_records(client, source, token):
    SourceSettings.objects.filter(connector=source).update(
        state="active", record_count=50, last_sequence=0
    )
    response = post(client, token, as_array(make_records(2)))
    assert response.json() == {"accepted": 2, "sample_count": 52, "state": "active"}


def test_error_bodies_are_json_even_for_unmatched_ingest_paths(client, db):
    response = client.post("/ingest/a/b/c/", data=b"{}", content_type="application/json")
    assert response.status_code == 404
    assert json.loads(response.content)["detail"]


def test_a_connector_deleted_after_its_token_was_looked_up_answers_404(source):
    from connectors.services import connector_delete
    from ingest.services import records_ingest
    from osmos.errors import Missing

    looked_up = SourceSettings.objects.select_related("connector").get(connector=source)
    connector_delete(connector=source)
    with pytest.raises(Missing):
        records_ingest(
            source=looked_up,
            body=as_array(make_records(1)),
            content_type="application/json",
            content_encoding=None,
            idempotency_key=None,
        )
    assert not Record.objects.exists()
