"""The ingest endpoint in the OpenAPI schema (SPEC §4, §6), as a drf-spectacular hook.

``POST /ingest/{token}/`` is a plain Django view (no DRF: see ``ingest.views``), so nothing
describes it automatically; this hook adds the operation with its bodies, headers and every
answer. The token in the path is the credential (no ``Authorization``). Its error bodies are
plain JSON with ``detail`` (not problem documents): they are what webhook senders log.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from osmos.models import IDEMPOTENCY_KEY_MAX_LENGTH

_RECORD = {
    "type": "object",
    "additionalProperties": True,
    "description": "One record: an object whose fields follow the source's schema.",
}
_DETAIL = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}


def _error(description: str, **properties: Any) -> dict[str, Any]:
    schema = {**_DETAIL, "properties": {**_DETAIL["properties"], **properties}}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _header(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "in": "header",
        "name": name,
        "required": False,
        "schema": {"type": "string", **schema},
        "description": description,
    }


def _operation() -> dict[str, Any]:
    limit = settings.INGEST_MAX_BODY_BYTES
    retry_after = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
    return {
        "operationId": "ingest_records",
        "summary": "Send records to a source",
        "description": "One JSON object or a JSON array of objects (documented here), or NDJSON: "
        "`Content-Type: application/x-ndjson`, one object per line (not listed as a second "
        "body type: openapi-python-client 0.29 generates a broken client for an operation with "
        "two body types, one of them a list). `Content-Encoding: gzip` is accepted. The body "
        "may have a `Content-Length` or be sent with `Transfer-Encoding: chunked`; either way "
        "it is at most `INGEST_MAX_BODY_BYTES` "
        f"({limit} bytes here), before and after decompression. A request is atomic: every "
        "record valid → all stored (200); any invalid → nothing stored (422).",
        "tags": ["ingest"],
        "security": [],
        "parameters": [
            {
                "in": "path",
                "name": "token",
                "required": True,
                "schema": {"type": "string"},
                "description": "The source's secret ingest token (the end of its ingest URL).",
            },
            _header(
                "Idempotency-Key",
                "A retry with the same key (per source, 24 hours) is answered as the first "
                "request was and stores nothing new.",
                maxLength=IDEMPOTENCY_KEY_MAX_LENGTH,
            ),
            _header("Content-Encoding", "`gzip` or none.", enum=["gzip", "identity"]),
            _header("webhook-id", "Standard Webhooks verification: the message id."),
            _header("webhook-timestamp", "Standard Webhooks: Unix seconds, within 5 minutes."),
            _header("webhook-signature", "Standard Webhooks: `v1,<base64 HMAC>` signatures."),
            _header(
                "X-Signature",
                "HMAC-SHA256 verification: hex or base64 HMAC of the raw body, optionally "
                "`sha256=`-prefixed (the header is the one the source names).",
            ),
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/IngestRecord"},
                            {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/IngestRecord"},
                            },
                        ]
                    }
                },
            },
        },
        "responses": {
            "200": {
                "description": "Every record stored (or the first answer, replayed).",
                "headers": {
                    "Idempotent-Replayed": {
                        "schema": {"type": "string", "enum": ["true"]},
                        "description": "Present when this is a replay.",
                    }
                },
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/IngestAccepted"}}
                },
            },
            "400": _error("Malformed JSON, an empty body, a bad header value."),
            "401": _error("A required sender signature is missing, wrong or stale."),
            "404": _error("Unknown or rotated ingest token."),
            "405": _error("Only POST."),
            "411": _error(
                "No `Content-Length` and no chunked encoding (or a server that cannot "
                "read chunked bodies)."
            ),
            "413": _error(
                "The body, or its decompressed form, is over the limit; nothing stored.",
                max_body_bytes={"type": "integer"},
            ),
            "415": _error("Unsupported `Content-Type`, charset or `Content-Encoding`."),
            "422": {
                "description": "Records that break the schema (nothing stored), or an "
                "`Idempotency-Key` reused for another body.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/IngestRefused"}}
                },
            },
            "429": {
                **_error("Over the source's request rate or the organization's storage quota."),
                "headers": retry_after,
            },
            "503": {
                **_error("The database is busy or down; nothing stored, retry later."),
                "headers": retry_after,
            },
        },
    }


_COMPONENTS = {
    "IngestRecord": _RECORD,
    "IngestAccepted": {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer"},
            "sample_count": {"type": "integer"},
            "state": {"type": "string", "enum": ["awaiting_samples", "ready", "active"]},
        },
        "required": ["accepted", "sample_count", "state"],
    },
    "IngestRecordError": {
        "type": "object",
        "properties": {
            "index": {"type": "integer", "nullable": True, "description": "From 0."},
            "field": {"type": "string", "nullable": True},
            "message": {"type": "string"},
        },
        "required": ["index", "field", "message"],
    },
    "IngestRefused": {
        "type": "object",
        "properties": {
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/IngestRecordError"},
            },
            "accepted": {"type": "integer"},
            "error_total": {"type": "integer"},
        },
        "required": ["detail"],
    },
}


def document_ingest(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {}).update(_COMPONENTS)
    result.setdefault("paths", {})["/ingest/{token}/"] = {"post": _operation()}
    return result
