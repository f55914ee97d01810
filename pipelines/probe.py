"""The destination test and its preview: the first request a destination would get, built from
sample records, shown before it is sent (``request_preview``) and sent once (``destination_test``).

Both build the request with ``sample_request``: the body template and the per-record URL of
SPEC §3.2 applied by ``osmos.outbound.shaping``, exactly as the delivery engine applies them,
so what the page previews is what the test action sends (and what a run will send).

The sample records come from the request (API ``records``), else from the stored samples of
a source (the source of the first pipeline into this destination, mapped by its mapping),
else they are made up from the schema.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from django.conf import settings
from django.core.exceptions import ValidationError

from connectors.models import Connector, WriteMode
from connectors.schema import compile_schema
from ingest.models import Record
from osmos import crypto
from osmos.outbound.client import USER_AGENT, DeliveryError, OutboundSession
from osmos.outbound.shaping import ShapingError, envelope, render_url
from pipelines.mapping import map_record
from pipelines.models import Pipeline
from pipelines.retries import Target

BODY_EXCERPT_BYTES = 2048

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
class SampleRequest:
    """A request as built (and sent): header values of the destination masked, the body whole
    (``body_excerpt``: its first 2 KB as text)."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes = field(repr=False)
    records: int
    origin: str  # where the records came from, for the page

    @property
    def body_excerpt(self) -> str:
        return self.body[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace")

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "headers": [{"name": name, "value": value} for name, value in self.headers],
            "body_excerpt": self.body_excerpt,
        }


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    status: int | None
    response_excerpt: str
    elapsed_ms: int
    error: str
    records_sent: int
    request: dict[str, Any] | None = None  # as sent (SampleRequest.as_dict)


def sample_records(connector: Connector, count: int) -> list[dict[str, Any]]:
    """``count`` records valid for the connector's schema (every field set)."""
    return [
        {name: _SAMPLE_VALUES[type_] for name, type_, _nullable in connector.field_specs()}
        for _ in range(count)
    ]


def source_samples(connector: Connector, count: int) -> tuple[list[dict[str, Any]], str]:
    """Up to ``count`` records for a destination: the first stored records of the source of
    its first pipeline, mapped by that pipeline's mapping and valid for the destination's
    schema; else made-up ones. Returns them with a description of where they came from."""
    pipeline = (
        Pipeline.objects.filter(organization_id=connector.organization_id, destination=connector)
        .select_related("source")
        .order_by("created_at")
        .first()
    )
    if pipeline is not None:
        mapping = tuple(pipeline.mapping.items())
        stored = Record.objects.filter(
            organization_id=connector.organization_id, connector_id=pipeline.source_id
        ).order_by("sequence")[: count * 4]
        schema = compile_schema(fields=connector.field_specs())
        mapped = [map_record(record.data, mapping) for record in stored]
        invalid = {error.index for error in schema.validate_python(mapped)} if mapped else set()
        valid = [record for index, record in enumerate(mapped) if index not in invalid][:count]
        if valid:
            return valid, f"samples of the source “{pipeline.source.name}” (pipeline “{pipeline}”)"
    return sample_records(connector, count), "made-up records built from the schema"


def sample_request(
    *,
    method: str,
    url: str,
    write_mode: str,
    body_template: object,
    headers: Sequence[tuple[str, str]],
    signed: bool,
    records: list[dict[str, Any]],
    idempotency_key: str,
    origin: str = "",
) -> SampleRequest:
    """The first request of ``records``: batch mode all of them in one array, single mode the
    first one (its own URL), inside the body template. ``headers``: the destination's, in
    plain text (masked in the result). Raises ShapingError when the template or the URL
    cannot shape these records."""
    prefix, suffix = envelope(body_template, write_mode)
    if write_mode == WriteMode.SINGLE:
        records = records[:1]
        url = render_url(url, records[0]) if records else url
        body = msgspec.json.encode(records[0]) if records else b"{}"
    else:
        body = msgspec.json.encode(records)
    shown = [(name, crypto.mask(value)) for name, value in headers]
    shown += [
        ("Content-Type", "application/json"),
        ("User-Agent", USER_AGENT),
        ("Idempotency-Key", idempotency_key),
    ]
    if signed:
        shown += [
            ("webhook-id", idempotency_key),
            ("webhook-timestamp", "(the time of sending)"),
            ("webhook-signature", crypto.MASK + " (v1, computed over this body)"),
        ]
    return SampleRequest(
        method=method,
        url=url,
        headers=shown,
        body=prefix + body + suffix,
        records=len(records),
        origin=origin,
    )


def request_preview(
    *, connector: Connector, changes: Mapping[str, Any] | None = None
) -> SampleRequest:
    """The first request the test action would send, with ``changes`` (unsaved ``method``,
    ``url``, ``write_mode``, ``body_template``) over the saved settings. Raises ShapingError
    (the reason, for the page) when they cannot shape the sample records."""
    destination = connector.destination
    values = {
        "method": destination.method,
        "url": destination.url,
        "write_mode": destination.write_mode,
        "body_template": destination.body_template,
        **(changes or {}),
    }
    records, origin = source_samples(connector, settings.DESTINATION_TEST_SAMPLE_RECORDS)
    return sample_request(
        **values,
        headers=destination.decrypted_headers(),
        signed=destination.signing_enabled,
        records=records,
        idempotency_key="osmos-test-…",
        origin=origin,
    )


def preview_or_problem(
    *, connector: Connector, changes: Mapping[str, Any] | None = None
) -> tuple[SampleRequest | None, str]:
    """``request_preview``, or None and the reason it cannot be built (the hook's contract)."""
    try:
        return request_preview(connector=connector, changes=changes), ""
    except ShapingError as exc:
        return None, str(exc)


def destination_test(
    *, connector: Connector, records: list[dict[str, Any]] | None = None
) -> ProbeResult:
    """Send ``records`` (default: ``source_samples``) to the destination once, without retry,
    as ``sample_request`` builds them, and report the request sent beside the answer.

    The timeout is the destination's, at most settings.DESTINATION_TEST_TIMEOUT_SECONDS, and
    bounds the whole request (connect, send, the complete answer), so a destination that
    answers one byte at a time cannot hold the web worker longer than that. Raises
    ValidationError (key ``records``) when a given record breaks the destination schema;
    every failure to build or send the request is a result with ``ok`` False, never an
    exception.
    """
    destination = connector.destination
    origin = "the records given"
    if records is None:
        records, origin = source_samples(connector, settings.DESTINATION_TEST_SAMPLE_RECORDS)
    errors = compile_schema(fields=connector.field_specs()).validate_python(records)
    if errors:
        raise ValidationError({"records": [f"record {e.index}: {e.message}" for e in errors[:20]]})
    key = f"osmos-test-{uuid.uuid4()}"
    try:
        target = Target.of(destination)
        request = sample_request(
            method=target.method,
            url=target.url,
            write_mode=destination.write_mode,
            body_template=destination.body_template,
            headers=target.headers,
            signed=bool(target.signing),
            records=records,
            idempotency_key=key,
            origin=origin,
        )
    except ShapingError as exc:
        return ProbeResult(False, None, "", 0, str(exc), 0)
    timeout = min(target.timeout, settings.DESTINATION_TEST_TIMEOUT_SECONDS)
    started = time.monotonic()
    with OutboundSession() as session:
        try:
            response = session.send(
                request.method,
                request.url,
                headers=target.headers,
                body=request.body,
                idempotency_key=key,
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
                records_sent=request.records,
                request=request.as_dict(),
            )
    return ProbeResult(
        ok=True,
        status=response.status,
        response_excerpt=response.excerpt,
        elapsed_ms=int(response.elapsed * 1000),
        error="",
        records_sent=request.records,
        request=request.as_dict(),
    )
