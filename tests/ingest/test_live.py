"""The ingest endpoint over real HTTP (pytest-django's live server and ``requests``):
body formats, limits, and what concurrent requests to one connector do to sequences and
idempotency keys. Concurrency runs against the real database (PostgreSQL in CI)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import settings as django_settings
from django.db import transaction

from connectors.models import SourceSettings
from ingest.models import IdempotencyKey, Record
from tests.ingest.bombs import gzip_of_zeros
from tests.support.bodies import as_array, as_ndjson, gzipped
from tests.support.schemas import order_records as make_records

pytestmark = pytest.mark.django_db(transaction=True)
JSON = {"Content-Type": "application/json"}
postgres_only = pytest.mark.skipif(
    not django_settings.DATABASE_IS_POSTGRES, reason="row locks and lock_timeout: PostgreSQL"
)


@pytest.fixture
def url(live_server, token) -> str:
    return f"{live_server.url}/ingest/{token}/"


def stored_ids(source) -> list[int]:
    return list(
        Record.objects.filter(connector=source)
        .order_by("sequence")
        .values_list("data__id", flat=True)
    )


def test_each_body_format_is_stored_over_http(url, source):
    assert requests.post(url, data=b'{"id": 0, "email": "a@x"}', headers=JSON, timeout=30).ok
    response = requests.post(url, data=as_array(make_records(2, start=1)), headers=JSON, timeout=30)
    assert response.json() == {"accepted": 2, "sample_count": 3, "state": "awaiting_samples"}
    ndjson = {"Content-Type": "application/x-ndjson"}
    assert requests.post(
        url, data=as_ndjson(make_records(2, start=3)), headers=ndjson, timeout=30
    ).ok
    gzip_headers = {**JSON, "Content-Encoding": "gzip"}
    body = gzipped(as_array(make_records(45, start=5)))
    response = requests.post(url, data=body, headers=gzip_headers, timeout=30)
    assert response.json() == {"accepted": 45, "sample_count": 50, "state": "ready"}
    assert stored_ids(source) == list(range(50))


def test_a_body_over_the_limit_answers_413_before_it_is_read(url, source, settings):
    settings.INGEST_MAX_BODY_BYTES = 64 * 1024
    body = as_array(make_records(5_000))
    assert len(body) > 64 * 1024
    response = requests.post(url, data=body, headers=JSON, timeout=30)
    assert response.status_code == 413
    assert "65536 bytes" in response.json()["detail"]
    assert stored_ids(source) == []


def test_a_gzip_bomb_of_one_gibibyte_answers_413_quickly(url, source, settings):
    settings.INGEST_MAX_BODY_BYTES = 32 * 1024 * 1024
    bomb = gzip_of_zeros(1024)
    started = time.monotonic()
    response = requests.post(
        url, data=bomb, headers={**JSON, "Content-Encoding": "gzip"}, timeout=60
    )
    assert response.status_code == 413
    assert "decompressed" in response.json()["detail"]
    assert time.monotonic() - started < 10  # stopped at 32 MiB, not inflated to 1 GiB
    assert stored_ids(source) == []


def test_a_wrong_method_answers_405_with_allow_over_http(url):
    response = requests.get(url, timeout=30)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["detail"]


def test_an_empty_body_answers_400(url, source):
    response = requests.post(url, data=b"", headers=JSON, timeout=30)
    assert response.status_code == 400
    assert "empty" in response.json()["detail"]


def test_a_chunked_body_without_content_length_answers_411(url, source):
    response = requests.post(url, data=iter([b"[", b"]"]), headers=JSON, timeout=30)
    assert response.status_code == 411
    assert "Content-Length" in response.json()["detail"]


def test_concurrent_posts_get_dense_sequences_with_each_request_contiguous(url, source):
    threads, requests_per_thread, size = 6, 4, 250
    barrier = threading.Barrier(threads)

    def send(worker: int) -> list[int]:
        answers = []
        with requests.Session() as session:  # closed: keep-alive server threads hold db connections
            barrier.wait()
            for n in range(requests_per_thread):
                start = (worker * requests_per_thread + n) * size
                body = as_array(make_records(size, start=start))
                response = session.post(url, data=body, headers=JSON, timeout=60)
                assert response.status_code == 200, response.text
                answers.append(response.json()["accepted"])
        return answers

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(send, range(threads)))
    total = threads * requests_per_thread * size
    assert sum(map(sum, results)) == total
    rows = list(
        Record.objects.filter(connector=source)
        .order_by("sequence")
        .values_list("sequence", "data__id", "received_at")
    )
    assert [sequence for sequence, _, _ in rows] == list(range(1, total + 1))
    ids = [record_id for _, record_id, _ in rows]
    # Requests are interleaved in any order, but each one's records are contiguous and in order.
    for offset in range(0, total, size):
        first = ids[offset]
        assert first % size == 0
        assert ids[offset : offset + size] == list(range(first, first + size))
    assert sorted(ids) == list(range(total))
    times = [received for _, _, received in rows]
    assert times == sorted(times)
    row = SourceSettings.objects.get(connector=source)
    assert (row.last_sequence, row.record_count) == (total, total)


def test_concurrent_duplicates_with_one_key_store_the_records_once(url, source):
    threads = 6
    body = as_array(make_records(500))
    barrier = threading.Barrier(threads)

    def send(_: int) -> requests.Response:
        barrier.wait()
        return requests.post(
            url, data=body, headers={**JSON, "Idempotency-Key": "same-batch"}, timeout=60
        )

    with ThreadPoolExecutor(threads) as pool:
        responses = list(pool.map(send, range(threads)))
    assert {r.status_code for r in responses} == {200}
    assert all(r.json() == responses[0].json() for r in responses)
    assert responses[0].json() == {"accepted": 500, "sample_count": 500, "state": "ready"}
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == threads - 1
    assert Record.objects.filter(connector=source).count() == 500
    assert IdempotencyKey.objects.filter(connector=source).count() == 1


@postgres_only
# With a key a request takes the locking path; without, small requests take the one-statement
# path: both must give up on the lock after INGEST_LOCK_TIMEOUT_SECONDS.
@pytest.mark.parametrize("key", [{"Idempotency-Key": "k"}, {}], ids=["keyed", "one-statement"])
def test_a_request_that_cannot_get_the_connector_lock_answers_503_and_stores_nothing(
    url, source, settings, key
):
    settings.INGEST_LOCK_TIMEOUT_SECONDS = 0.5
    body = as_array(make_records(3))
    with transaction.atomic():
        SourceSettings.objects.select_for_update().get(connector=source)  # a long writer
        response = requests.post(url, data=body, headers={**JSON, **key}, timeout=30)
    assert response.status_code == 503
    assert "nothing was stored" in response.json()["detail"]
    assert response.headers["Retry-After"]
    assert stored_ids(source) == []
    assert not IdempotencyKey.objects.exists()
    retry = requests.post(url, data=body, headers={**JSON, **key}, timeout=30)
    assert retry.status_code == 200
    assert "Idempotent-Replayed" not in retry.headers
    assert stored_ids(source) == [0, 1, 2]


def test_250000_records_in_one_request_are_stored_once_in_order(url, source):
    count = 250_000
    body = b"\n".join(b'{"id": %d, "email": "u%d@x"}' % (i, i) for i in range(count))
    headers = {"Content-Type": "application/x-ndjson", "Idempotency-Key": "big"}
    response = requests.post(url, data=body, headers=headers, timeout=120)
    assert response.status_code == 200, response.text[:500]
    assert response.json() == {"accepted": count, "sample_count": count, "state": "ready"}
    again = requests.post(url, data=body, headers=headers, timeout=120)
    assert again.headers["Idempotent-Replayed"] == "true"
    records = Record.objects.filter(connector=source)
    assert records.count() == count
    first, last = records.order_by("sequence")[0], records.order_by("-sequence")[0]
    assert (first.sequence, first.data["id"]) == (1, 0)
    assert (last.sequence, last.data["id"]) == (count, count - 1)
    too_many = body + b'\n{"id": -1, "email": "one too many"}'
    refused = requests.post(
        url, data=too_many, headers={"Content-Type": "application/x-ndjson"}, timeout=120
    )
    assert refused.status_code == 413
    assert refused.json()["max_records"] == count
    assert records.count() == count
