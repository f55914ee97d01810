"""Ingest request bodies and paths."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable


def as_array(records: Iterable[dict]) -> bytes:
    return json.dumps(list(records)).encode()


def as_ndjson(records: Iterable[dict]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body)


def ingest_path(token: str) -> str:
    return f"/ingest/{token}/"
