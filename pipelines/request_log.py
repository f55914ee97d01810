"""The request log of runs, and the request inspector (SPEC §5.6).

Writing (``RequestRecorder``, in the run's own thread): one ``RequestLog`` row per HTTP
request, holding only what cannot be rebuilt later — the chunk, the sequence range, the
attempt, status, duration, error, and the destination's answer (scrubbed, bounded; a 2xx
answer's body only when short: ``kept_response``). How the run's requests were made (method,
URL, write mode, header names with masked values) is a ``RequestTemplate`` written once per
run (again only if the destination changed between two slices of the run). Single mode
makes one request per record, so a 2 KB request body per row would multiply the log's size
by ten: it is never stored.

Reading (``describe_requests`` → ``describe_request``): each attempt's request is rebuilt
from its template and the stored records of its sequence range, mapped as the run mapped
them, cut at 2 KB. ``render_request`` is the one place that turns records into a request's
URL and body.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from psycopg.types.json import Jsonb

from connectors.models import WriteMode
from connectors.schema import compile_schema
from osmos import crypto
from osmos.observability import metrics
from osmos.outbound.client import USER_AGENT
from osmos.outbound.headers import is_reserved
from osmos.outbound.scrub import scrub
from pipelines.models import EXCERPT_MAX_CHARS, RequestLog, RequestTemplate, Run, RunChunk
from pipelines.records import FailureBuffer, record_preparer, run_selection
from pipelines.retries import Attempt, Target

BODY_EXCERPT_BYTES = 2048
# At most this many response headers are kept, each value cut to this many characters.
RESPONSE_HEADERS_KEPT = 30
RESPONSE_HEADER_VALUE_CHARS = 256
# Headers of a 2xx answer that tell nothing about it (and would cost ~100 bytes a row in
# single mode): not kept. A non-2xx answer keeps them all.
_SUCCESS_NOISE = frozenset(("date", "server", "connection", "keep-alive", "content-length"))
# A record is at least 2 bytes ("{}") plus a comma: 2 KB never needs more rows than this.
_ROWS_FOR_EXCERPT = BODY_EXCERPT_BYTES // 3 + 2


# --- writing -------------------------------------------------------------------------------------


def kept_response(attempt: Attempt, secrets: Sequence[str]) -> tuple[dict[str, str] | None, str]:
    """What the log keeps of an answer: ``(headers, body excerpt)``, scrubbed of the
    destination's secret header values and of credential-like headers.

    Non-2xx answers are kept whole (headers bounded, body ≤ 2 KB). A 2xx answer keeps its
    headers but Date, Server, Connection, Keep-Alive and Content-Length, and its body only
    when it is at most settings.REQUEST_LOG_SUCCESS_BODY_CHARS characters (single mode makes
    one request per record: long success bodies and per-request noise would be most of the
    log's size). No answer (connection error, timeout): ``(None, "")``.
    """
    if attempt.status is None or attempt.response_headers is None:
        return None, ""
    success = 200 <= attempt.status < 300
    headers: dict[str, str] = {}
    for name, value in list(attempt.response_headers.items())[:RESPONSE_HEADERS_KEPT]:
        if success and name in _SUCCESS_NOISE:
            continue
        headers[name] = _scrubbed_header(name, value[:RESPONSE_HEADER_VALUE_CHARS], secrets)
    excerpt = attempt.response_excerpt[:EXCERPT_MAX_CHARS]
    if success and len(excerpt) > settings.REQUEST_LOG_SUCCESS_BODY_CHARS:
        excerpt = ""
    return headers, excerpt


@functools.lru_cache(maxsize=1024)
def _scrubbed_header(name: str, value: str, secrets: tuple[str, ...]) -> str:
    """As a header line, so that credential-like names (Set-Cookie, X-Api-Key…) are redacted
    whatever their value, and the destination's own secrets anywhere. Cached: in single mode
    most answers repeat the same headers."""
    return scrub(f"{name}: {value}", secrets).partition(":")[2].strip()


def template_values(target: Target, *, write_mode: str) -> dict[str, Any]:
    """The ``RequestTemplate`` fields of a run's target: header values masked, never stored."""
    return {
        "method": target.method,
        "url": target.url,
        "write_mode": write_mode,
        "headers": [
            [name, crypto.mask(value)] for name, value in target.headers if not is_reserved(name)
        ],
        "signed": bool(target.signing),
    }


class RequestRecorder:
    """Writes request-log rows and counts ``requests_made`` (from the run's own thread).

    ``target`` and ``write_mode`` default to the run's destination as it is now (the run's
    ``pipeline.destination.destination``, loaded by the engine).
    """

    _COLUMNS = (
        "organization_id",
        "run_id",
        "chunk_id",
        "sequence_from",
        "sequence_to",
        "record_count",
        "attempt",
        "status",
        "duration_ms",
        "error",
        "response_headers",
        "response_excerpt",
        "created_at",
    )

    def __init__(
        self, *, run: Run, target: Target | None = None, write_mode: str | None = None
    ) -> None:
        self._run = run
        self._pending: list[tuple[int, Attempt]] = []
        self._target = target
        self._write_mode = write_mode
        self._template_written = False

    def _destination_target(self) -> tuple[Target, str]:
        if self._target is None or self._write_mode is None:
            destination = self._run.pipeline.destination.destination
            self._target = self._target or Target.of(destination)
            self._write_mode = self._write_mode or destination.write_mode
        return self._target, self._write_mode

    def add(self, chunk: RunChunk, attempt: Attempt) -> None:
        self._pending.append((chunk.pk, attempt))
        metrics.DELIVERY_REQUESTS.labels(status_class=metrics.status_class(attempt.status)).inc()
        metrics.DELIVERY_REQUEST_SECONDS.observe(attempt.duration_ms / 1000)

    def flush(self) -> None:
        if not self._pending:
            return
        now = timezone.now()
        with transaction.atomic():
            if not self._template_written:
                self._write_template(now)
            if connection.vendor == "postgresql":
                self._copy(now)
            else:
                RequestLog.objects.bulk_create(self._objects(now))
            Run.objects.filter(pk=self._run.id).update(
                requests_made=F("requests_made") + len(self._pending)
            )
        self._pending = []

    def _write_template(self, now) -> None:
        """Once per recorder (a slice of the run): a template unless the latest is the same."""
        target, write_mode = self._destination_target()
        values = template_values(target, write_mode=write_mode)
        latest = RequestTemplate.objects.filter(run_id=self._run.id).order_by("-valid_from").first()
        if latest is None or any(getattr(latest, k) != v for k, v in values.items()):
            RequestTemplate.objects.create(
                organization_id=self._run.organization_id,
                run_id=self._run.id,
                valid_from=now,
                **values,
            )
        self._template_written = True

    def _rows(self, now) -> Iterator[tuple[object, ...]]:
        organization_id, run_id = self._run.organization_id, self._run.id
        secrets = tuple(self._destination_target()[0].secrets())
        for chunk_id, a in self._pending:
            headers, excerpt = kept_response(a, secrets)
            yield (
                organization_id,
                run_id,
                chunk_id,
                a.sequence_from,
                a.sequence_to,
                a.record_count,
                a.attempt,
                a.status,
                a.duration_ms,
                a.error,
                headers,
                excerpt,
                now,
            )

    def _objects(self, now) -> list[RequestLog]:
        return [RequestLog(**dict(zip(self._COLUMNS, row, strict=True))) for row in self._rows(now)]

    def _copy(self, now) -> None:
        # Single mode logs one row per record: COPY costs a fraction of bulk_create's CPU,
        # which competes with the sending threads for the GIL.
        columns = ", ".join(self._COLUMNS)
        sql = f"COPY {RequestLog._meta.db_table} ({columns}) FROM STDIN"
        headers_at = self._COLUMNS.index("response_headers")
        with connection.cursor() as cursor, cursor.copy(sql) as copy:
            for row in self._rows(now):
                if row[headers_at] is not None:
                    row = (*row[:headers_at], Jsonb(row[headers_at]), *row[headers_at + 1 :])
                copy.write_row(row)


# --- reading: the request inspector --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RenderedRequest:
    url: str
    body: bytes  # the start of the body: at least BODY_EXCERPT_BYTES when there is more
    complete: bool  # ``body`` is the whole body


def render_request(
    template: RequestTemplate, records: Sequence[bytes], *, more: bool
) -> RenderedRequest:
    """THE place where the inspector turns an attempt's records into the URL and body that
    were sent: today the destination's URL, and a bare JSON array of the records (batch) or
    the bare record (single). ``records`` are the mapped records as sent (the first ones,
    enough for BODY_EXCERPT_BYTES); ``more``: the request held further records.

    A body envelope or per-record URL (the destination's request shaping) is rendered here
    too, by the same renderer the senders use, when it exists.
    """
    if template.write_mode == WriteMode.SINGLE:
        body = records[0] if records else b""
        return RenderedRequest(url=template.url, body=body, complete=not more)
    body = b"[" + b",".join(records) + (b"" if more else b"]")
    return RenderedRequest(url=template.url, body=body, complete=not more)


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
