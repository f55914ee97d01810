"""Smoke tests of the benchmark harness: the sink and the results writer (no timing)."""

from __future__ import annotations

import http.client
import json

import orjson
import pytest

from bench import results
from bench.sink import serve_in_thread


@pytest.fixture(scope="module")
def sink():
    port, state = serve_in_thread()
    return port, state


def _post(port: int, path: str, body, *, chunked: bool = False, connection=None):
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    if chunked:
        connection.request("POST", path, body=iter([body[:7], body[7:]]), encode_chunked=True)
    else:
        connection.request("POST", path, body=body)
    response = connection.getresponse()
    return response.status, orjson.loads(response.read()), connection


def _reset(port: int, **options) -> None:
    status, _, connection = _post(port, "/_sink/reset", orjson.dumps(options))
    connection.close()
    assert status == 200


def _stats(port: int) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/_sink/stats")
    stats = orjson.loads(connection.getresponse().read())
    connection.close()
    return stats


def test_sink_counts_records_and_fails_the_whole_batch_holding_a_chosen_id(sink):
    port, _ = sink
    _reset(port, fail_ids=[5], fail_status=422)
    good = orjson.dumps([{"id": i, "x": "y"} for i in range(1, 5)])
    bad = orjson.dumps([{"id": 5}, {"id": 6}])
    status, answer, connection = _post(port, "/hook", good)
    assert (status, answer["records"]) == (200, 4)
    # Same keep-alive connection, chunked body this time.
    status, answer, connection = _post(port, "/hook", bad, chunked=True, connection=connection)
    connection.close()
    assert status == 422
    assert answer["bad_ids"] == [5]
    stats = _stats(port)
    assert stats["requests"] == 2
    assert stats["records_ok"] == 4
    assert stats["records_refused"] == 2
    assert stats["ok_id_sum"] == 1 + 2 + 3 + 4
    assert stats["failed_requests"] == 1


def test_sink_counts_single_objects_and_duplicates_when_tracking_ids(sink):
    port, _ = sink
    _reset(port, track_ids=True)
    for record_id in (7, 8, 7):
        status, _, connection = _post(port, "/one", orjson.dumps({"id": record_id}))
        connection.close()
        assert status == 200
    stats = _stats(port)
    assert (stats["records_ok"], stats["distinct_ids"], stats["duplicates"]) == (3, 2, 1)


def test_sink_answers_400_to_a_body_that_is_not_json(sink):
    port, _ = sink
    _reset(port)
    status, answer, connection = _post(port, "/hook", b"[{not json")
    connection.close()
    assert status == 400
    assert "detail" in answer
    assert _stats(port)["bad_requests"] == 1


def test_results_table_lists_every_row_with_ratio_target_and_met(tmp_path):
    rows = [
        results.Row(
            figure="records/s",
            unit="rec/s",
            product=30.0,
            baseline=100.0,
            target=results.target(">=", 0.5),
        ),
        results.Row(
            figure="requests (k=1)",
            unit="requests",
            product=27,
            baseline=29,
            target=results.target("<=", 1.0),
            checks={"exactly the bad records failed": False},
        ),
    ]
    machine = results.machine_info(postgres_version="15")
    path = results.write_result(
        name="bench-demo", what="demo", rows=rows, machine=machine, results_dir=tmp_path
    )
    saved = json.loads(path.read_text())
    assert [row["met"] for row in saved["rows"]] == [False, False]
    assert saved["rows"][0]["ratio"] == pytest.approx(0.3)
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        f"# B\n\nHand-written intro.\n\n{results.TABLE_START}\nold\n{results.TABLE_END}\n"
        "\n## Profile\nkept\n"
    )
    results.update_doc(results_dir=tmp_path, doc_path=doc)
    text = doc.read_text()
    assert "Hand-written intro." in text
    assert "## Profile\nkept" in text
    assert "\nold\n" not in text
    assert (
        "| `bench-demo` | records/s | 30.0 rec/s | 100 rec/s | 0.30x | >= 0.5x | **NO** |" in text
    )
    assert "**NO** (failed: exactly the bad records failed)" in text


def test_a_target_is_met_only_when_the_ratio_and_every_check_pass():
    assert results.target_met(ratio=0.6, target=results.target(">=", 0.5), checks={})
    assert not results.target_met(ratio=0.4, target=results.target(">=", 0.5), checks={})
    assert not results.target_met(
        ratio=0.6, target=results.target(">=", 0.5), checks={"stored": False}
    )
    assert results.target_met(ratio=None, target=None, checks={}) is None
    assert results.median_ratio([2.0, 4.0, 9.0], [1.0, 1.0, 1.0]) == 4.0
