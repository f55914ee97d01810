"""Scrubbing secrets out of what a destination answered, before osmos stores or shows it.

A destination's answer ends up in failure reasons, the request log, the API and pages. A
hostile or careless destination may echo the request back, headers included, so every excerpt
the client returns (and every reason taken from a body) goes through `scrub`, which removes
- the destination's own secret header values (every value osmos sent in `headers`, also in
  their JSON-escaped form and, for `Scheme token` values, the token alone), and
- the values of credential-like headers whatever their value: Authorization, Cookie,
  Set-Cookie, Proxy-Authorization and any name containing api-key, token, secret, password,
  session, signature or credential, written as a header line (`Name: value`), a JSON or
  Python-dict member (`"Name": "value"`) or a query/form parameter (`name=value`).

Secrets shorter than MIN_SECRET_LENGTH characters are not searched for: a header `X-Version: 2`
is no secret, and removing every "2" would make excerpts unreadable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 4

_SECRET_NAME = (
    r"(?:[\w-]*(?:authorization|cookie|api[-_]?key|token|secret|password|passwd|session"
    r"|signature|credential)[\w-]*)"
)
_HEADER_LINE = re.compile(rf"(?im)^([ \t]*{_SECRET_NAME}[ \t]*:[ \t]*)([^\r\n]+)")
_QUOTED_MEMBER = re.compile(
    rf"""(?i)(["']{_SECRET_NAME}["']\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,}}\]]+)"""
)
_PARAMETER = re.compile(rf"(?i)(\b{_SECRET_NAME}=)([^&\s\"'<>]+)")


def secret_forms(values: Iterable[str]) -> list[str]:
    """Every form in which these header values could come back, longest first."""
    forms: set[str] = set()
    for value in values:
        candidates = {value, value.strip(), json.dumps(value)[1:-1]}
        scheme, _, token = value.strip().partition(" ")
        if token and scheme.isalpha():  # "Bearer abc", "Basic dXNlcjpwYXNz"
            candidates.add(token.strip())
        forms.update(c for c in candidates if len(c) >= MIN_SECRET_LENGTH)
    return sorted(forms, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the given secret values nor credential-like header values."""
    if not text:
        return text
    for secret in secret_forms(secrets):
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _HEADER_LINE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _QUOTED_MEMBER.sub(lambda m: m.group(1) + _requote(m.group(2)), text)
    return _PARAMETER.sub(lambda m: m.group(1) + REDACTED, text)


def _requote(value: str) -> str:
    quote = value[:1] if value[:1] in "\"'" else ""
    return f"{quote}{REDACTED}{quote}"
