"""``ingest.body.read_body``: a chunked body is read in steps up to the limit (unit tests; the
same over real servers and sockets is in ``test_chunked_ingest.py``)."""

from __future__ import annotations

import io

import pytest
from django.test import RequestFactory

from ingest.body import READ_STEP, read_body
from ingest.refusals import STATUS_OF_INGEST
from osmos.api import status_of
from osmos.errors import DomainError


class CountingStream(io.BytesIO):
    """A WSGI input that counts what was read from it."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def chunked_request(body: bytes, *, terminated: bool = True):
    request = RequestFactory().post("/ingest/t/", data=b"", content_type="application/json")
    request.META.pop("CONTENT_LENGTH", None)
    request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
    request.META["wsgi.input"] = CountingStream(body)
    if terminated:
        request.META["wsgi.input_terminated"] = True
    return request


def refusal_status(request, limit: int) -> int:
    with pytest.raises(DomainError) as refused:
        read_body(request, limit=limit)
    return status_of(refused.value, STATUS_OF_INGEST)


def test_a_chunked_body_is_read_whole_when_under_the_limit():
    body = b"[" + b'{"id": 1},' * 20_000 + b'{"id": 2}]'
    assert read_body(chunked_request(body), limit=len(body)) == body


def test_a_chunked_body_over_the_limit_is_413_before_the_rest_is_read():
    request = chunked_request(b"x" * (10 * READ_STEP))
    assert refusal_status(request, limit=2 * READ_STEP) == 413
    assert request.META["wsgi.input"].bytes_read == 3 * READ_STEP  # not the 10 steps sent


def test_a_chunked_body_on_a_server_that_cannot_decode_it_is_411():
    request = chunked_request(b"[]", terminated=False)
    assert refusal_status(request, limit=1000) == 411


def test_a_body_with_neither_length_nor_chunked_encoding_is_411():
    request = chunked_request(b"[]")
    del request.META["HTTP_TRANSFER_ENCODING"]
    assert refusal_status(request, limit=1000) == 411


def test_a_body_with_content_length_is_read_by_django():
    request = RequestFactory().post("/ingest/t/", data=b"[1]", content_type="application/json")
    assert read_body(request, limit=1000) == b"[1]"
