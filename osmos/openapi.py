"""drf-spectacular hook: the API's conventions, documented on every operation (SPEC §6).

Views document what is particular to them (their bodies, their 400s and 409s). What every
operation can answer because of the conventions is added here, once, so no operation forgets
one and a client generated from the schema (``openapi-python-client``) parses every answer:

- 401 (no or a bad token) and 403 (the role does not allow it) on every operation;
- 404 on every operation with an object in its path;
- 400 on every operation that reads a body or a query (field errors, ``page_size``, whose
  bounds are documented on every list whatever its pagination class);
- every ``POST``: the ``Idempotency-Key`` header, 409 (a request with the key is still
  running), 422 (the key was used for another request), ``Idempotent-Replayed`` on its answers;
- 413 (``max_body_bytes``) on every operation that takes a body, 415 (not JSON) on those that
  document one.

The bodies become RFC 9457 problem documents in ``osmos.api.document_problems``, which runs
after this hook. The ingest endpoint (``ingest.openapi``) is not under ``/api/`` and keeps
its own answers.
"""

from __future__ import annotations

from typing import Any

from osmos.models import IDEMPOTENCY_KEY_MAX_LENGTH
from osmos.pagination import MAX_PAGE_SIZE, PAGE_SIZE_PARAM

_DESCRIPTIONS = {
    "400": "Invalid input: errors by field, as DRF keys them (`Idempotency-Key` and "
    "`page_size` included). Nothing was written.",
    "401": "No credentials, or a token that is unknown, revoked or expired.",
    "403": "Your role does not allow this (members read and run; owners and admins write).",
    "404": "No such object in your organization (another organization's answer the same).",
    "409": "A request with the same `Idempotency-Key` is still being processed: retry "
    "shortly and you get its answer.",
    "413": "The body is over the size limit (`max_body_bytes`). Nothing was read.",
    "415": "The body is not JSON: send `Content-Type: application/json`.",
    "422": "This `Idempotency-Key` was used for another request (method, path or body) in "
    "the last 24 hours: use a new key for a new request.",
}
# For a documented answer a view left without a description.
_FALLBACK_DESCRIPTIONS = {
    **_DESCRIPTIONS,
    "400": "Invalid input. Nothing was written.",
    "409": "The current state does not allow this (see `detail`).",
    "422": "The request contradicts an earlier one (see `detail`).",
}
_BODY_METHODS = ("post", "put", "patch")
_IDEMPOTENCY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH},
    "description": "Any unique string (a UUID): a retry with the same key and body within 24 "
    "hours is answered as the first request was, and does nothing again.",
}
_REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "schema": {"type": "string", "enum": ["true"]},
        "description": "Present on an answer replayed for a repeated `Idempotency-Key`.",
    }
}
_MAX_BODY_BYTES = {
    "type": "object",
    "properties": {"max_body_bytes": {"type": "integer"}},
}


def _add(responses: dict[str, Any], code: str, **extra: Any) -> None:
    if code in responses:
        if code in ("409", "422") and extra.pop("idempotency", False):
            described = responses[code].get("description") or ""
            if _DESCRIPTIONS[code] not in described:
                responses[code]["description"] = f"{described} Or: {_DESCRIPTIONS[code]}".strip()
        return
    extra.pop("idempotency", None)
    responses[code] = {"description": _DESCRIPTIONS[code], **extra}


def document_conventions(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    for url, path in result.get("paths", {}).items():
        if not url.startswith("/api/v1/") or url.startswith(("/api/v1/schema", "/api/v1/docs")):
            continue
        for method, operation in path.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            parameters = operation.setdefault("parameters", [])
            for parameter in parameters:
                if parameter.get("in") == "query" and parameter.get("name") == PAGE_SIZE_PARAM:
                    parameter["schema"] = {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_PAGE_SIZE,
                    }
                    parameter["description"] = f"Results per page, 1 to {MAX_PAGE_SIZE} (else 400)."
            _add(responses, "401")
            _add(responses, "403")
            if any(p.get("in") == "path" for p in parameters):
                _add(responses, "404")
            takes_body = method in _BODY_METHODS
            if takes_body or any(p.get("in") == "query" for p in parameters):
                _add(responses, "400")
            if takes_body:
                _add(
                    responses,
                    "413",
                    content={"application/json": {"schema": _MAX_BODY_BYTES}},
                )
            if "requestBody" in operation:
                _add(responses, "415")
            for code, response in responses.items():
                if not response.get("description") and str(code) in _FALLBACK_DESCRIPTIONS:
                    response["description"] = _FALLBACK_DESCRIPTIONS[str(code)]
            if method == "post":
                if not any(p.get("name") == "Idempotency-Key" for p in parameters):
                    parameters.append(dict(_IDEMPOTENCY_PARAMETER))
                _add(responses, "409", idempotency=True)
                _add(responses, "422", idempotency=True)
                for code, response in responses.items():
                    if str(code).startswith("2"):
                        response.setdefault("headers", {}).update(_REPLAYED_HEADER)
    return result
