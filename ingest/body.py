"""Reading an ingest request body: its format, its encoding and the size limits.

Pure functions, no database: the view calls them before anything is locked or stored.
Each refusal is an :class:`IngestRefused` carrying the HTTP status and the ``detail`` that
the endpoint answers with.

Decisions (also in the README's ingest section):

- ``application/json`` is one JSON object or a JSON array of objects; its ``charset`` may only
  be UTF-8 (RFC 8259). NDJSON is ``application/x-ndjson`` (SPEC §4); the common spellings
  ``application/ndjson``, ``application/jsonl`` and ``application/x-jsonlines`` are accepted
  as the same thing, because clients disagree on the name and the format is identical.
- ``Content-Encoding`` may be absent, ``identity`` or ``gzip`` (``x-gzip``); anything else 415.
- The size limit applies to the body as sent and again to the decompressed body: gzip is
  inflated in bounded steps and abandoned as soon as the output passes the limit, so a gzip
  bomb costs at most the limit in memory and answers 413.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

BodyKind = Literal["json", "ndjson"]

_JSON_TYPES = frozenset({"application/json"})
_NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
_GZIP_ENCODINGS = frozenset({"gzip", "x-gzip"})
_INFLATE_STEP = 4 * 1024 * 1024  # output bytes per zlib call: bounds memory between checks
_GZIP_MAGIC = b"\x1f\x8b"
_STARTS_ARRAY = re.compile(rb"[ \t\r\n]*\[")


@dataclass
class IngestRefused(Exception):
    """A request the endpoint refuses: answered with ``status``, ``{"detail", **extra}`` and
    ``headers`` (``Retry-After`` of a 429...)."""

    status: int
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, **self.extra}


def body_kind(content_type: str | None) -> BodyKind:
    """The body format named by a ``Content-Type`` header value.

    Raises ``IngestRefused(415)`` for a missing or unsupported type or a charset other than UTF-8.
    """
    media_type, _, params = (content_type or "").partition(";")
    media_type = media_type.strip().lower()
    if media_type in _JSON_TYPES:
        kind: BodyKind = "json"
    elif media_type in _NDJSON_TYPES:
        kind = "ndjson"
    else:
        shown = media_type or "none"
        raise IngestRefused(
            415,
            f"Unsupported Content-Type {shown!r}: send application/json (an object or an array "
            "of objects) or application/x-ndjson (one object per line).",
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                raise IngestRefused(415, f"Unsupported charset {charset!r}: bodies are UTF-8.")
    return kind


def validator_kind(kind: BodyKind, body: bytes) -> str:
    """The ``kind`` argument of ``CompiledSchema.validate_body`` for a decoded body.

    ``application/json`` is never sniffed as NDJSON: a JSON document with two objects on two
    lines is malformed JSON, and saying so is more useful than guessing.
    """
    if kind == "ndjson":
        return "ndjson"
    return "array" if _STARTS_ARRAY.match(body) else "object"


def is_gzip(content_encoding: str | None) -> bool:
    """True for gzip, False for no encoding; raises ``IngestRefused(415)`` for anything else."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in _GZIP_ENCODINGS:
        return True
    if encoding == "identity":
        return False
    raise IngestRefused(415, f"Unsupported Content-Encoding {encoding!r}: send gzip or none.")


def check_declared_length(content_length: str | None, *, limit: int) -> None:
    """Refuse early (before reading) a body whose declared length is over ``limit`` (413).

    A body without ``Content-Length`` (chunked) is refused with 411: the WSGI server would hand
    Django an empty stream, and "empty body" would be a misleading answer.
    """
    if not content_length:
        raise IngestRefused(411, "Content-Length is required (chunked bodies are not accepted).")
    try:
        declared = int(content_length)
    except ValueError:
        raise IngestRefused(400, "Content-Length is not a number.") from None
    if declared > limit:
        raise _too_large(limit)


def decode_body(raw: bytes, *, content_encoding: str | None, limit: int) -> bytes:
    """The body as the client meant it: ``raw`` decompressed when it is gzip.

    Raises ``IngestRefused``: 413 when ``raw`` or its decompressed form is over ``limit`` bytes,
    415 for an unsupported encoding, 400 for a corrupt or truncated gzip stream or an empty body.
    """
    if len(raw) > limit:
        raise _too_large(limit)
    body = gunzip_capped(raw, limit=limit) if is_gzip(content_encoding) else raw
    if not body or body.isspace():
        raise IngestRefused(400, "The body is empty: send at least one record.")
    return body


def gunzip_capped(data: bytes, *, limit: int) -> bytes:
    """Inflate a gzip stream (several concatenated members allowed) of at most ``limit`` bytes.

    Memory stays bounded by ``limit`` plus one step whatever the compression ratio.
    Raises ``IngestRefused`` 413 (too large) or 400 (not gzip, corrupt, truncated).
    """
    parts: list[bytes] = []
    size = 0
    pending = data
    while pending:
        if not pending.startswith(_GZIP_MAGIC):
            if parts and not pending.strip(b"\0"):
                break  # zero padding after the last member, as gzip(1) tolerates
            raise IngestRefused(400, "The body is not valid gzip (Content-Encoding: gzip).")
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        while not inflater.eof:
            try:
                chunk = inflater.decompress(pending, _INFLATE_STEP)
            except zlib.error as exc:
                raise IngestRefused(400, f"The gzip body is corrupt: {exc}.") from None
            pending = inflater.unconsumed_tail
            size += len(chunk)
            if size > limit:
                raise _too_large(limit, decompressed=True)
            if not chunk and not pending:
                raise IngestRefused(400, "The gzip body is truncated.")
            parts.append(chunk)
        pending = inflater.unused_data
    return b"".join(parts)


def _too_large(limit: int, *, decompressed: bool = False) -> IngestRefused:
    what = "decompressed body" if decompressed else "body"
    return IngestRefused(
        413,
        f"The {what} is larger than the limit of {limit} bytes; split it into several requests.",
        {"max_body_bytes": limit},
    )
