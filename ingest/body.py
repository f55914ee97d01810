"""Reading an ingest request body: its format, its encoding and the size limits.

Pure functions, no database: the view calls them before anything is locked or stored.
Each refusal is an ``osmos.errors`` domain error (``UnsupportedFormat``, ``TooLarge``,
``LengthRequired``, ``Malformed``); ``ingest.refusals`` picks the endpoint's status.

Decisions (also in the README's ingest section):

- ``application/json`` is one JSON object or a JSON array of objects; its ``charset`` may only
  be UTF-8 (RFC 8259). NDJSON is ``application/x-ndjson`` (SPEC §4); the common spellings
  ``application/ndjson``, ``application/jsonl`` and ``application/x-jsonlines`` are accepted
  as the same thing, because clients disagree on the name and the format is identical.
- ``Content-Encoding`` may be absent, ``identity`` or ``gzip`` (``x-gzip``); anything else 415.
- The size limit applies to the body as sent and again to the decompressed body: gzip is
  inflated in bounded steps and abandoned as soon as the output passes the limit, so a gzip
  bomb costs at most the limit in memory and answers 413.
- A body may come with ``Content-Length`` (checked before reading) or with
  ``Transfer-Encoding: chunked`` and no length (SPEC §4): read in steps and refused with 413
  as soon as it passes the limit, without reading the rest (``read_body``).
"""

from __future__ import annotations

import re
import zlib
from typing import Literal

from osmos.errors import LengthRequired, Malformed, TooLarge, UnsupportedFormat

BodyKind = Literal["json", "ndjson"]

_JSON_TYPES = frozenset({"application/json"})
_NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
_GZIP_ENCODINGS = frozenset({"gzip", "x-gzip"})
_INFLATE_STEP = 4 * 1024 * 1024  # output bytes per zlib call: bounds memory between checks
_GZIP_MAGIC = b"\x1f\x8b"
READ_STEP = 64 * 1024  # bytes per read of a chunked body
_STARTS_ARRAY = re.compile(rb"[ \t\r\n]*\[")


def body_kind(content_type: str | None) -> BodyKind:
    """The body format named by a ``Content-Type`` header value.

    Raises ``UnsupportedFormat`` for a missing or unsupported type or a charset other than UTF-8.
    """
    media_type, _, params = (content_type or "").partition(";")
    media_type = media_type.strip().lower()
    if media_type in _JSON_TYPES:
        kind: BodyKind = "json"
    elif media_type in _NDJSON_TYPES:
        kind = "ndjson"
    else:
        shown = media_type or "none"
        raise UnsupportedFormat(
            f"Unsupported Content-Type {shown!r}: send application/json (an object or an array "
            "of objects) or application/x-ndjson (one object per line).",
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                raise UnsupportedFormat(f"Unsupported charset {charset!r}: bodies are UTF-8.")
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
    """True for gzip, False for no encoding; raises ``UnsupportedFormat`` for anything else."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in _GZIP_ENCODINGS:
        return True
    if encoding == "identity":
        return False
    raise UnsupportedFormat(f"Unsupported Content-Encoding {encoding!r}: send gzip or none.")


def check_declared_length(content_length: str | None, *, limit: int) -> None:
    """Refuse early (before reading) a body whose declared length is over ``limit``.

    A body without ``Content-Length`` passes here: ``read_body`` decides whether it can be read
    (chunked) or is refused (``LengthRequired``).
    """
    if not content_length:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise Malformed("Content-Length is not a number.") from None
    if declared > limit:
        raise _too_large(limit)


def read_body(request, *, limit: int) -> bytes:
    """The raw body of an ingest request, at most ``limit`` bytes (SPEC §4).

    With ``Content-Length`` (already checked against ``limit``), Django reads it. Without, a
    ``Transfer-Encoding: chunked`` body is read from the WSGI server's stream in
    ``READ_STEP`` pieces and refused (``TooLarge``) as soon as it passes ``limit``, before the
    rest is read. Only servers that decode chunked bodies and say so
    (``wsgi.input_terminated``: gunicorn) hand over such a stream; waitress decodes and buffers
    the body itself and passes a ``Content-Length``. Django's development server does neither,
    so there a chunked body is refused (``LengthRequired``), as is a body with no length at all.
    """
    meta = request.META
    if meta.get("CONTENT_LENGTH"):
        return request.read()
    if "chunked" not in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        raise LengthRequired(
            "Content-Length is required (or send the body with Transfer-Encoding: chunked)."
        )
    if not meta.get("wsgi.input_terminated"):
        raise LengthRequired(
            "This server cannot read chunked bodies (Django's development server): send "
            "Content-Length, or serve osmos with `manage.py run_embedded` or gunicorn."
        )
    return read_capped(meta["wsgi.input"], limit=limit)


def read_capped(stream, *, limit: int) -> bytes:
    """Everything ``stream`` holds, refused (``TooLarge``) once past ``limit`` bytes: at most
    ``limit`` + ``READ_STEP`` bytes are ever read."""
    parts: list[bytes] = []
    size = 0
    while chunk := stream.read(READ_STEP):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def decode_body(raw: bytes, *, content_encoding: str | None, limit: int) -> bytes:
    """The body as the client meant it: ``raw`` decompressed when it is gzip.

    Raises ``TooLarge`` when ``raw`` or its decompressed form is over ``limit`` bytes,
    ``UnsupportedFormat`` for an unsupported encoding, ``Malformed`` for a corrupt or truncated
    gzip stream or an empty body.
    """
    if len(raw) > limit:
        raise _too_large(limit)
    body = gunzip_capped(raw, limit=limit) if is_gzip(content_encoding) else raw
    if not body or body.isspace():
        raise Malformed("The body is empty: send at least one record.")
    return body


def gunzip_capped(data: bytes, *, limit: int) -> bytes:
    """Inflate a gzip stream (several concatenated members allowed) of at most ``limit`` bytes.

    Memory stays bounded by ``limit`` plus one step whatever the compression ratio.
    Raises ``TooLarge`` or ``Malformed`` (not gzip, corrupt, truncated).
    """
    parts: list[bytes] = []
    size = 0
    pending = data
    while pending:
        if not pending.startswith(_GZIP_MAGIC):
            if parts and not pending.strip(b"\0"):
                break  # zero padding after the last member, as gzip(1) tolerates
            raise Malformed("The body is not valid gzip (Content-Encoding: gzip).")
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        while not inflater.eof:
            try:
                chunk = inflater.decompress(pending, _INFLATE_STEP)
            except zlib.error as exc:
                raise Malformed(f"The gzip body is corrupt: {exc}.") from None
            pending = inflater.unconsumed_tail
            size += len(chunk)
            if size > limit:
                raise _too_large(limit, decompressed=True)
            if not chunk and not pending:
                raise Malformed("The gzip body is truncated.")
            parts.append(chunk)
        pending = inflater.unused_data
    return b"".join(parts)


def _too_large(limit: int, *, decompressed: bool = False) -> TooLarge:
    what = "decompressed body" if decompressed else "body"
    return TooLarge(
        f"The {what} is larger than the limit of {limit} bytes; split it into several requests.",
        max_body_bytes=limit,
    )
