"""The destination test: one request with sample records, sent now, answered inline."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from django.conf import settings
from django.core.exceptions import ValidationError

from connectors.models import Connector, WriteMode
from connectors.schema import compile_schema
from osmos.outbound.client import DeliveryError, OutboundSession
from pipelines.retries import Target

# A valid value of each schema type, for made-up sample records.
_SAMPLE_VALUES: dict[str, Any] = {
    "string": "example",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "date": "2025-01-31",
    "datetime": "2025-01-31T09:30:00+00:00",
    "json": {"example": True},
}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    status: int | None
    response_excerpt: str
    elapsed_ms: int
    error: str
    records_sent: int


def sample_records(connector: Connector, count: int) -> list[dict[str, Any]]:
    """``count`` records valid for the connector's schema (every field set)."""
    return [
        {name: _SAMPLE_VALUES[type_] for name, type_, _nullable in connector.field_specs()}
        for _ in range(count)
    ]


def destination_test(
    *, connector: Connector, records: list[dict[str, Any]] | None = None
) -> ProbeResult:
    """Send ``records`` (default: made-up samples) to the destination once, without retry.

    Batch mode sends them as one array, single mode sends the first one. The timeout is the
    destination's, at most settings.DESTINATION_TEST_TIMEOUT_SECONDS, and bounds the whole
    request (connect, send, the complete answer), so a destination that answers one byte at a
    time cannot hold the web worker longer than that. Raises ValidationError
    (key ``records``) when a given record breaks the destination schema; every failure to
    reach the destination is a result with ``ok`` False, never an exception.
    """
    destination = connector.destination
    if records is None:
        records = sample_records(connector, settings.DESTINATION_TEST_SAMPLE_RECORDS)
    errors = compile_schema(fields=connector.field_specs()).validate_python(records)
    if errors:
        raise ValidationError({"records": [f"record {e.index}: {e.message}" for e in errors[:20]]})
    if destination.write_mode == WriteMode.SINGLE:
        records = records[:1]
        body = msgspec.json.encode(records[0])
    else:
        body = msgspec.json.encode(records)
    target = Target.of(destination)
    timeout = min(target.timeout, settings.DESTINATION_TEST_TIMEOUT_SECONDS)
    started = time.monotonic()
    with OutboundSession() as session:
        try:
            response = session.send(
                target.method,
                target.url,
                headers=target.headers,
                body=body,
                idempotency_key=f"osmos-test-{uuid.uuid4()}",
                timeout=timeout,
                signing_secrets=target.signing,
            )
        except DeliveryError as exc:
            return ProbeResult(
                ok=False,
                status=exc.status,
                response_excerpt=exc.response_excerpt,
                elapsed_ms=int((time.monotonic() - started) * 1000),
                error=exc.message,
                records_sent=len(records),
            )
    return ProbeResult(
        ok=True,
        status=response.status,
        response_excerpt=response.excerpt,
        elapsed_ms=int(response.elapsed * 1000),
        error="",
        records_sent=len(records),
    )
