"""The request inspector (SPEC §5.6): each attempt's request rebuilt from its run's
``RequestTemplate`` and the stored records of its sequence range, mapped as the run mapped
them, cut at 2 KB (the request log, ``pipelines.request_log``, keeps no request bodies).
``render_request`` is the one place that turns records into a request's URL and body.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from django.db.models import Max, TextField
from django.db.models.functions import Cast

from connectors.models import WriteMode
from connectors.schema import compile_schema
from osmos import crypto
from osmos.outbound.client import USER_AGENT
from osmos.outbound.shaping import ShapingError, render_url, url_fields
from pipelines.chunk_reader import run_selection
from pipelines.models import RequestLog, RequestTemplate, Run
from pipelines.records import FailureBuffer, record_preparer
from pipelines.request_log import BODY_EXCERPT_BYTES

# A record is at least 2 bytes ("{}") plus a comma: 2 KB never needs more rows than this.
_ROWS_FOR_EXCERPT = BODY_EXCERPT_BYTES // 3 + 2


@dataclass(frozen=True, slots=True)
class RenderedRequest:
    url: str
    body: bytes  # the start of the body: at least BODY_EXCERPT_BYTES when there is more
    complete: bool  # ``body`` is the whole body


def render_request(
    template: RequestTemplate, records: Sequence[bytes], *, more: bool
) -> RenderedRequest:
    """THE place where the inspector turns an attempt's records into the URL and body that
    were sent, with the renderer the senders use (``osmos.outbound.shaping``): the body
    template's envelope around a JSON array of the records (batch) or around the record
    (single), and in single mode the record's URL. ``records`` are the mapped records as sent
    (the first ones, enough for BODY_EXCERPT_BYTES); ``more``: the request held further
    records.
    """
    prefix, suffix = template.body_prefix.encode(), template.body_suffix.encode()
    if template.write_mode == WriteMode.SINGLE:
        record = records[0] if records else b""
        return RenderedRequest(
            url=_record_url(template.url, record),
            body=prefix + record + suffix,
            complete=not more,
        )
    end = b"" if more else b"]" + suffix
    body = prefix + b"[" + b",".join(records) + end
    return RenderedRequest(url=template.url, body=body, complete=not more)


def _record_url(url_template: str, record: bytes) -> str:
    if not url_fields(url_template) or not record:
        return url_template
    try:
        return render_url(url_template, msgspec.json.decode(record))
    except (ShapingError, msgspec.DecodeError):
        return url_template  # such a record was never sent: it failed with that reason


def idempotency_key(attempt: RequestLog, *, write_mode: str, part: bool) -> str:
    """The ``Idempotency-Key`` the attempt was sent with (as ``pipelines.senders`` makes
    it): the chunk's key for a whole batch, with ``:first-last`` for a bisected part, and
    ``:sequence`` for one record in single mode."""
    base = attempt.chunk.idempotency_key if attempt.chunk_id else ""
    if write_mode == WriteMode.SINGLE:
        return f"{base}:{attempt.sequence_from}"
    if part:
        return f"{base}:{attempt.sequence_from}-{attempt.sequence_to}"
    return base


def describe_request(
    *,
    attempt: RequestLog,
    template: RequestTemplate | None,
    records: Sequence[bytes] | None,
    more: bool = False,
    part: bool = False,
) -> dict[str, Any]:
    """One attempt as the inspector shows it: the request as sent (method, URL, headers
    with secret values masked, the first 2 KB of the body) and the destination's answer.

    ``records``: the attempt's mapped records (the first ones; None when they are no longer
    stored); ``more``: it held more than those; ``part``: a bisected part of its chunk.
    """
    request: dict[str, Any] | None = None
    if template is not None:
        headers = {name: value for name, value in template.headers}
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = USER_AGENT
        key = idempotency_key(attempt, write_mode=template.write_mode, part=part)
        headers["Idempotency-Key"] = key
        if template.signed:
            headers["webhook-id"] = key
            headers["webhook-timestamp"] = "(the time of the attempt)"
            headers["webhook-signature"] = "v1," + crypto.MASK
        body_excerpt: str | None = None
        truncated = False
        url = template.url
        if records is not None:
            rendered = render_request(template, records, more=more)
            url = rendered.url
            if rendered.complete:
                headers["Content-Length"] = str(len(rendered.body))
            truncated = not rendered.complete or len(rendered.body) > BODY_EXCERPT_BYTES
            body_excerpt = _text(rendered.body[:BODY_EXCERPT_BYTES])
        request = {
            "method": template.method,
            "url": url,
            "headers": headers,
            "body_excerpt": body_excerpt,
            "body_truncated": truncated,
        }
    response = None
    if attempt.status is not None:
        response = {
            "status": attempt.status,
            "headers": attempt.response_headers,
            "body_excerpt": attempt.response_excerpt,
            "kept": attempt.response_headers is not None,
        }
    return {
        "id": attempt.pk,
        "chunk": attempt.chunk.index if attempt.chunk_id else None,
        "sequence_from": attempt.sequence_from,
        "sequence_to": attempt.sequence_to,
        "record_count": attempt.record_count,
        "attempt": attempt.attempt,
        "sent_at": attempt.created_at,
        "duration_ms": attempt.duration_ms,
        "status": attempt.status,
        "error": attempt.error,
        "request": request,
        "response": response,
    }


def _text(body: bytes) -> str:
    # A cut may fall inside a multi-byte character: drop it rather than show U+FFFD.
    return body.decode("utf-8", errors="ignore")


def describe_requests(*, run: Run, attempts: Iterable[RequestLog]) -> list[dict[str, Any]]:
    """``describe_request`` for a page of the run's attempts (already scoped to its
    organization), with one query for the templates, one for the bisection parts and one
    per distinct sequence range of batch attempts (at most 700 rows each; single mode: one
    query for the whole page)."""
    attempts = list(attempts)
    if not attempts:
        return []
    templates = list(RequestTemplate.objects.filter(run=run).order_by("valid_from"))
    widest = _widest_per_chunk_attempt(run, attempts)
    records = _AttemptRecords(run)
    if any(t.write_mode == WriteMode.SINGLE for t in templates):
        records.prefetch_singles(
            a.sequence_from for a in attempts if a.sequence_from == a.sequence_to
        )
    described = []
    for attempt in attempts:
        template = _template_at(templates, attempt)
        part = attempt.record_count < widest.get((attempt.chunk_id, attempt.attempt), 0)
        rows, more = (None, False)
        if template is not None:
            rows, more = records.of(attempt, single=template.write_mode == WriteMode.SINGLE)
        described.append(
            describe_request(attempt=attempt, template=template, records=rows, more=more, part=part)
        )
    return described


def _template_at(templates: list[RequestTemplate], attempt: RequestLog) -> RequestTemplate | None:
    found = templates[0] if templates else None
    for template in templates:
        if template.valid_from <= attempt.created_at:
            found = template
    return found


def _widest_per_chunk_attempt(run: Run, attempts: list[RequestLog]) -> dict[tuple, int]:
    """The largest request of each (chunk, attempt): a smaller one was a bisected part."""
    chunk_ids = {a.chunk_id for a in attempts}
    rows = (
        RequestLog.objects.filter(run=run, chunk_id__in=chunk_ids)
        .values("chunk_id", "attempt")
        .annotate(widest=Max("record_count"))
    )
    return {(r["chunk_id"], r["attempt"]): r["widest"] for r in rows}


class _AttemptRecords:
    """The mapped records of attempts, as the run sent them (its mapping, its validation)."""

    def __init__(self, run: Run) -> None:
        pipeline = run.pipeline
        destination = pipeline.destination
        self._run = run
        self._prepare = record_preparer(
            mapping=run.mapping,
            source_fields=pipeline.source.field_specs(),
            destination_fields=destination.field_specs(),
            schema=compile_schema(fields=destination.field_specs()),
        )
        self._cache: dict[tuple[int, int], tuple[list[bytes] | None, bool]] = {}
        self._singles: dict[int, bytes] | None = None

    def of(self, attempt: RequestLog, *, single: bool) -> tuple[list[bytes] | None, bool]:
        if single and attempt.sequence_from == attempt.sequence_to:
            raw = self._single(attempt.sequence_from)
            return ([raw] if raw is not None else None), False
        span = (attempt.sequence_from, attempt.sequence_to)
        if span not in self._cache:
            self._cache[span] = self._range(*span, expected=attempt.record_count)
        return self._cache[span]

    def _single(self, sequence: int) -> bytes | None:
        if self._singles is None:
            self._singles = {}
        if sequence not in self._singles:
            self._singles.update(self._prepared(run_selection(self._run).filter(sequence=sequence)))
        return self._singles.get(sequence)

    def prefetch_singles(self, sequences: Iterable[int]) -> None:
        """One query for the records of a page of single-mode attempts."""
        selection = run_selection(self._run).filter(sequence__in=sorted(set(sequences)))
        self._singles = self._prepared(selection)

    def _range(self, first: int, last: int, *, expected: int) -> tuple[list[bytes] | None, bool]:
        rows = run_selection(self._run).filter(sequence__gte=first, sequence__lte=last)
        prepared = list(self._prepared(rows, limit=_ROWS_FOR_EXCERPT).values())
        if not prepared:
            return None, False
        size, kept = 1, []
        for raw in prepared:
            kept.append(raw)
            size += len(raw) + 1
            if size > BODY_EXCERPT_BYTES:
                break
        return kept, len(kept) < expected

    def _prepared(self, rows, *, limit: int | None = None) -> dict[int, bytes]:
        texts = (
            rows.order_by("sequence")
            .annotate(text=Cast("data", output_field=TextField()))
            .values_list("sequence", "text")
        )
        if limit is not None:
            texts = texts[:limit]
        return dict(self._prepare(iter(texts), FailureBuffer()))  # type: ignore[arg-type]


INSPECTOR_PAGE_SIZE = 50


def inspector_page(*, run: Run, attempts, after: str | None) -> dict[str, Any]:
    """The run page's Requests tab: ``attempts`` (the run's, scoped) after the id ``after``,
    described, and the id the next page starts after (None on the last page)."""
    try:
        after_id = int(after) if after else 0
    except ValueError:
        after_id = 0
    if not 0 <= after_id < 2**63:
        after_id = 0
    page = list(attempts.filter(id__gt=after_id).select_related("chunk")[: INSPECTOR_PAGE_SIZE + 1])
    more = len(page) > INSPECTOR_PAGE_SIZE
    page = page[:INSPECTOR_PAGE_SIZE]
    return {
        "attempts": describe_requests(run=run, attempts=page),
        "attempts_after": after_id,
        "attempts_next": page[-1].pk if more else None,
    }
