"""The request log of runs (SPEC §5.6).

Writing (``RequestRecorder``, in the run's own thread): one ``RequestLog`` row per HTTP
request, holding only what cannot be rebuilt later — the chunk, the sequence range, the
attempt, status, duration, error, and the destination's answer (scrubbed, bounded; a 2xx
answer's body only when short: ``kept_response``). How the run's requests were made (method,
URL, write mode, header names with masked values) is a ``RequestTemplate`` written once per
run (again only if the destination changed between two slices of the run). Single mode
makes one request per record, so a 2 KB request body per row would multiply the log's size
by ten: it is never stored.

Reading: ``pipelines.inspector`` rebuilds each attempt's request from its template and the
stored records of its sequence range.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from psycopg.types.json import Jsonb

from osmos import crypto
from osmos.observability import metrics
from osmos.outbound.headers import is_reserved
from osmos.outbound.scrub import scrub
from pipelines.models import EXCERPT_MAX_CHARS, RequestLog, RequestTemplate, Run, RunChunk
from pipelines.retries import Attempt, Target

BODY_EXCERPT_BYTES = 2048
# At most this many response headers are kept, each value cut to this many characters.
RESPONSE_HEADERS_KEPT = 30
RESPONSE_HEADER_VALUE_CHARS = 256
# Headers of a 2xx answer that tell nothing about it (and would cost ~100 bytes a row in
# single mode): not kept. A non-2xx answer keeps them all.
_SUCCESS_NOISE = frozenset(("date", "server", "connection", "keep-alive", "content-length"))


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
        "body_prefix": target.prefix.decode(),
        "body_suffix": target.suffix.decode(),
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
