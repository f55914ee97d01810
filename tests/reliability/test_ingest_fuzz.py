"""Hostile bodies against the ingest endpoint over real HTTP (live server + ``requests``).

Every answer is a 4xx with a JSON ``detail`` (a 200 only for bodies that are in fact valid),
never a 5xx; nothing is stored unless the answer is 200; and a decompression bomb is refused
without the server's memory growing (sampled from /proc while the request is in flight).
"""

from __future__ import annotations

import gzip
import json
import random
import threading
import time
import zlib
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from connectors.services import connector_create
from ingest.models import Record
from tests.ingest.bombs import gzip_of_zeros

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.reliability]

SCHEMA = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "name", "type": "string", "nullable": True},
    {"name": "score", "type": "number", "nullable": True},
    {"name": "extra", "type": "json", "nullable": True},
]
JSON = "application/json"
NDJSON = "application/x-ndjson"


@pytest.fixture
def ingest_url(live_server, org_a) -> str:
    issued = connector_create(organization=org_a, name="Fuzzed", direction="source", fields=SCHEMA)
    return f"{live_server.url}/ingest/{issued.ingest_token}/"


def _post(url: str, body: bytes, content_type: str | None = JSON, **headers) -> requests.Response:
    if content_type is not None:
        headers["Content-Type"] = content_type
    return requests.post(url, data=body, headers=headers, timeout=60)


def _assert_clean_refusal(response: requests.Response, label: str) -> None:
    assert response.status_code < 500, (label, response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), label
    body = response.json()
    if response.status_code == 200:
        assert isinstance(body["accepted"], int), label
    else:
        assert 400 <= response.status_code < 500, label
        assert body.get("detail"), (label, body)


def _deep(depth: int, opener: str, closer: str, inner: str = "1") -> bytes:
    return (opener * depth + inner + closer * depth).encode()


def _record(**fields) -> dict:
    return {"id": 1, "name": "x", "score": 1.0, "extra": None, **fields}


HOSTILE_BODIES: dict[str, tuple[bytes, str | None, dict[str, str]]] = {
    "empty body": (b"", JSON, {}),
    "only whitespace": (b" \n\t ", JSON, {}),
    "100000 nested arrays": (_deep(100_000, "[", "]"), JSON, {}),
    "100000 nested objects": (_deep(100_000, '{"a":', "}"), JSON, {}),
    "deep nesting inside a json field": (
        b'{"id": 1, "extra": ' + _deep(5_000, "[", "]") + b"}",
        JSON,
        {},
    ),
    "1e999 as a number": (b'{"id": 1, "score": 1e999}', JSON, {}),
    "-1e999 in a json field": (b'{"id": 1, "extra": -1e999}', JSON, {}),
    "a 400-digit integer": (b'{"id": ' + b"9" * 400 + b"}", JSON, {}),
    "a 400-digit integer in a json field": (b'{"id": 1, "extra": ' + b"9" * 400 + b"}", JSON, {}),
    "an integer past 64 bits": (b'{"id": 18446744073709551616}', JSON, {}),
    "NaN literal": (b'{"id": 1, "score": NaN}', JSON, {}),
    "Infinity literal": (b'{"id": 1, "score": Infinity}', JSON, {}),
    "a 20 MB string": (
        json.dumps(_record(name="x" * 20_000_000)).encode(),
        JSON,
        {},
    ),
    "invalid UTF-8": (b'{"id": 1, "name": "\xff\xfe\xc3\x28"}', JSON, {}),
    "overlong UTF-8": (b'{"id": 1, "name": "\xc0\xaf"}', JSON, {}),
    "a lone surrogate escape": (b'{"id": 1, "name": "\\ud800"}', JSON, {}),
    "a NUL escape (jsonb refuses it)": (b'{"id": 1, "name": "a\\u0000b"}', JSON, {}),
    "a NUL escape in a json field": (b'{"id": 1, "extra": {"k": "\\u0000"}}', JSON, {}),
    "a NUL key in a json field": (b'{"id": 1, "extra": {"\\u0000": 1}}', JSON, {}),
    "a raw NUL byte": (b'{"id": 1, "name": "a\x00b"}', JSON, {}),
    "UTF-8 BOM": (b'\xef\xbb\xbf{"id": 1}', JSON, {}),
    "duplicate keys": (b'{"id": 1, "id": 2}', JSON, {}),
    "top-level string": (b'"hello"', JSON, {}),
    "top-level number": (b"42", JSON, {}),
    "array of arrays": (b"[[1, 2], [3]]", JSON, {}),
    "trailing garbage": (b'{"id": 1} xyz', JSON, {}),
    "two objects without NDJSON": (b'{"id": 1}{"id": 2}', JSON, {}),
    "NDJSON with a blank line and garbage": (b'{"id": 1}\n\n{oops\n', NDJSON, {}),
    "NDJSON of arrays": (b"[1]\n[2]\n", NDJSON, {}),
    "a record with 100000 unknown keys": (
        json.dumps({f"k{i}": i for i in range(100_000)}).encode(),
        JSON,
        {},
    ),
    "a text/plain body": (b'{"id": 1}', "text/plain", {}),
    "a form body": (b"id=1", "application/x-www-form-urlencoded", {}),
    "a multipart body": (b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x", {}),
    "no content type": (b'{"id": 1}', None, {}),
    "a content type with a bogus charset": (b'{"id": 1}', "application/json; charset=ebcdic", {}),
    "truncated gzip": (
        gzip.compress(b'[{"id": 1}]' * 100)[:30],
        JSON,
        {"Content-Encoding": "gzip"},
    ),
    "gzip header then garbage": (
        b"\x1f\x8b\x08\x00" + bytes(range(256)),
        JSON,
        {"Content-Encoding": "gzip"},
    ),
    "gzip with a wrong CRC": (
        gzip.compress(b'{"id": 1}')[:-8] + b"\x00" * 8,
        JSON,
        {"Content-Encoding": "gzip"},
    ),
    "gzip claimed but plain": (b'{"id": 1}', JSON, {"Content-Encoding": "gzip"}),
    "two gzip members, one of garbage": (
        gzip.compress(b'{"id": 1}') + b"\x1f\x8b garbage",
        JSON,
        {"Content-Encoding": "gzip"},
    ),
    "gzip twice": (
        gzip.compress(gzip.compress(b'{"id": 1}')),
        JSON,
        {"Content-Encoding": "gzip, gzip"},
    ),
    "deflate encoding": (zlib.compress(b'{"id": 1}'), JSON, {"Content-Encoding": "deflate"}),
    "br encoding": (b"\x0b\x02\x80{}\x03", JSON, {"Content-Encoding": "br"}),
}


@pytest.mark.parametrize("label", list(HOSTILE_BODIES))
def test_a_hostile_body_gets_a_clean_4xx_and_stores_nothing(ingest_url, label):
    body, content_type, headers = HOSTILE_BODIES[label]
    response = _post(ingest_url, body, content_type, **headers)
    _assert_clean_refusal(response, label)
    if response.status_code == 200:
        # Only for bodies that really are valid (e.g. duplicate keys: the last one wins).
        assert Record.objects.count() == response.json()["accepted"], label
    else:
        assert Record.objects.count() == 0, label
    # And the endpoint still works afterwards.
    ok = _post(ingest_url, b'{"id": 7}')
    assert ok.status_code == 200, (label, ok.text)


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(
    body=st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=64).map(lambda b: b'[{"id": 1, "name": "' + b + b'"}]'),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=5)
                | st.dictionaries(st.text(max_size=8), children, max_size=5)
            ),
            max_leaves=30,
        ).map(lambda v: json.dumps(v, allow_nan=True).encode()),
    ),
    content_type=st.sampled_from([JSON, NDJSON, "application/json; charset=utf-8"]),
    gzipped=st.booleans(),
)
def test_random_bodies_never_get_a_5xx(ingest_url, body, content_type, gzipped):
    headers = {"Content-Encoding": "gzip"} if gzipped else {}
    before = Record.objects.count()
    response = _post(ingest_url, gzip.compress(body) if gzipped else body, content_type, **headers)
    _assert_clean_refusal(response, repr(body[:80]))
    stored = Record.objects.count() - before
    assert stored == (response.json()["accepted"] if response.status_code == 200 else 0)


def _rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


class _PeakRss:
    """Samples this process's resident memory (the live server runs in it) every 5 ms."""

    def __init__(self):
        self.peak = self.baseline = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_a_gzip_bomb_is_refused_fast_without_growing_memory(ingest_url, settings):
    settings.INGEST_MAX_BODY_BYTES = 16 * 1024 * 1024
    bomb = gzip_of_zeros(2048)  # 2 GiB of zeros in ~2 MB
    assert len(bomb) < 4 * 1024 * 1024
    started = time.monotonic()
    with _PeakRss() as rss:
        response = _post(ingest_url, bomb, JSON, **{"Content-Encoding": "gzip"})
    elapsed = time.monotonic() - started
    assert response.status_code == 413, response.text
    assert response.json()["detail"]
    assert elapsed < 5, f"the bomb took {elapsed:.1f} s to refuse"
    grown = (rss.peak - rss.baseline) / 1024 / 1024
    # The limit is 16 MiB: decompressing stops there. 64 MiB leaves room for the client's
    # copy of the request and the allocator; 2 GiB would be a blow-up.
    assert grown < 64, f"memory grew by {grown:.0f} MiB while refusing a 2 GiB bomb"
    assert Record.objects.count() == 0


def test_random_garbage_of_every_size_up_to_the_limit_is_refused(ingest_url, settings):
    settings.INGEST_MAX_BODY_BYTES = 4 * 1024 * 1024
    rng = random.Random(8)
    for size in (1, 7, 1023, 65_536, 4 * 1024 * 1024, 4 * 1024 * 1024 + 1):
        body = rng.randbytes(size)
        response = _post(ingest_url, body)
        _assert_clean_refusal(response, f"{size} random bytes")
        assert response.status_code in (400, 413), size
    assert Record.objects.count() == 0
