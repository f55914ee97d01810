"""Request shaping (SPEC §3.2): body envelopes and per-record URLs. Pure functions, no database.

**Body envelope** (``body_template``). A JSON value in which exactly one string value is the
placeholder ``"{{records}}"`` (batch mode) or ``"{{record}}"`` (single mode), e.g.
``{"events": "{{records}}", "source": "osmos"}``. ``envelope(template, mode)`` encodes the
template once and returns the bytes before and after the placeholder: the engine writes the
prefix, the records (the array, or the one object) and the suffix, so a 250,000-record
batch is still streamed from its spooled file and nothing is string-interpolated (a record
can never change the envelope, nor the envelope a record).

**Per-record URLs** (single mode). ``{{field}}`` placeholders in the path and in query values
of the URL, naming non-nullable ``string`` or ``integer`` fields of the destination schema.
``render_url(url_template, record)`` percent-encodes each value as one path segment or one
query value (every byte but the unreserved ``A-Z a-z 0-9 - . _ ~`` is encoded: ``/``, ``?``,
``#``, ``%``, ``&``, ``=``, spaces, unicode), so a value can never reach another segment,
the query, the fragment, the host or the port. The scheme, host and port never hold a
placeholder (refused at save). A value that would make its path segment ``.``, ``..`` or
empty, or a URL over ``MAX_URL_LENGTH`` characters, is refused for that record
(``ShapingError``): the engine fails that record with the reason and sends nothing for it.

One rule, one place: ``template_problems`` and ``url_problems`` are what the save-time
validation (``connectors.validation``) reports, and ``envelope`` / ``render_url`` apply the
same rules at send time (raising ``ShapingError``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import msgspec

from osmos.outbound.urlguard import MAX_URL_LENGTH

__all__ = [
    "MAX_TEMPLATE_BYTES",
    "MAX_URL_LENGTH",
    "ShapingError",
    "envelope",
    "placeholder_for",
    "render_url",
    "template_problems",
    "url_fields",
    "url_host_problems",
    "url_problems",
]

MAX_TEMPLATE_BYTES = 16 * 1024
BATCH, SINGLE = "batch", "single"
_PLACEHOLDERS = {BATCH: "{{records}}", SINGLE: "{{record}}"}
# {{name}}: a field name without braces (field names with braces cannot be placeholders).
_FIELD = re.compile(r"\{\{([^{}]*)\}\}")
_URL_FIELD_TYPES = ("string", "integer")


class ShapingError(ValueError):
    """A template or a record that cannot shape a request; the message is shown to customers."""


class _AuthorityError(ShapingError):
    """A placeholder in the scheme, host or port."""


def placeholder_for(mode: str) -> str:
    """The body placeholder of a write mode: ``{{records}}`` (batch) or ``{{record}}``."""
    return _PLACEHOLDERS[mode]


# --- body envelope ------------------------------------------------------------------------------


def template_problems(template: object, *, mode: str) -> list[str]:
    """Why ``template`` (a decoded JSON value; None = no envelope) cannot wrap the records of
    ``mode``; [] when it can. Checks: JSON-encodable, at most MAX_TEMPLATE_BYTES encoded,
    exactly one string value equal to the mode's placeholder, no placeholder as an object key,
    inside a longer string, or of the other mode."""
    if template is None:
        return []
    if type(template) is not str and isinstance(template, str):
        return ["The body template is not valid JSON."]  # text a form could not parse
    try:
        encoded = msgspec.json.encode(template)
    except (TypeError, ValueError, OverflowError):
        return ["The body template is not valid JSON."]
    if len(encoded) > MAX_TEMPLATE_BYTES:
        return [
            f"The body template is {len(encoded):,} bytes as JSON; the limit is "
            f"{MAX_TEMPLATE_BYTES:,} bytes."
        ]
    wanted, other = _PLACEHOLDERS[mode], _PLACEHOLDERS[SINGLE if mode == BATCH else BATCH]
    found, problems = 0, []
    for kind, text in _strings(template):
        if kind == "value" and text == wanted:
            found += 1
        elif text == other or (kind == "value" and other in text):
            problems.append(
                f'In {mode} mode the records are written as the string value "{wanted}", '
                f'not "{other}".'
            )
        elif wanted in text:
            where = "an object key" if kind == "key" else "part of a longer string"
            problems.append(
                f'"{wanted}" must be a whole string value on its own, not {where}: the '
                "records are inserted as JSON, never into text."
            )
    if found == 0 and not problems:
        problems.append(f'The body template must hold the string value "{wanted}" once.')
    elif found > 1:
        problems.append(f'The body template must hold "{wanted}" exactly once, not {found} times.')
    return _unique(problems)


def envelope(template: object, mode: str) -> tuple[bytes, bytes]:
    """The bytes sent before and after the records of one request: ``(b"", b"")`` without a
    template. Raises ShapingError for a template ``template_problems`` refuses."""
    if template is None:
        return b"", b""
    problems = template_problems(template, mode=mode)
    if problems:
        raise ShapingError(problems[0])
    encoded = msgspec.json.encode(template)
    # A marker that appears nowhere in the encoded template stands in for the placeholder,
    # so splitting on it cannot cut the template anywhere else.
    marker = _unused_marker(encoded)
    wrapped = msgspec.json.encode(_replace(template, _PLACEHOLDERS[mode], marker))
    prefix, suffix = wrapped.split(msgspec.json.encode(marker))
    return prefix, suffix


def _unused_marker(encoded: bytes) -> str:
    counter = 0
    while f"osmos-records-{counter}".encode() in encoded:
        counter += 1
    return f"osmos-records-{counter}"


def _replace(value: Any, placeholder: str, marker: str) -> Any:
    if isinstance(value, str):
        return marker if value == placeholder else value
    if isinstance(value, list):
        return [_replace(item, placeholder, marker) for item in value]
    if isinstance(value, dict):
        return {key: _replace(item, placeholder, marker) for key, item in value.items()}
    return value


def _strings(value: Any):
    """("key" | "value", text) of every string of a JSON value."""
    if isinstance(value, str):
        yield "value", value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield "key", key
            yield from _strings(item)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# --- per-record URLs ----------------------------------------------------------------------------


def url_fields(url_template: str) -> list[str]:
    """The field names of the ``{{field}}`` placeholders of a URL, in order."""
    return [name.strip() for name in _FIELD.findall(url_template)]


def url_host_problems(url_template: str) -> list[str]:
    """Why the scheme, host or port of ``url_template`` hold a placeholder ([] when they do
    not): checked before the host is resolved, in any write mode."""
    try:
        _compile(url_template)
    except _AuthorityError as exc:
        return [str(exc)]
    except ShapingError:
        return []  # about the path or query: url_problems says it with the schema
    return []


def url_problems(
    url_template: str, *, mode: str, fields: Sequence[tuple[str, str, bool]]
) -> list[str]:
    """Why the placeholders of ``url_template`` cannot be filled from the records of a
    destination with ``fields`` (its schema, ``(name, type, nullable)``) in ``mode``; [] when
    they can (also for a URL without placeholders)."""
    if "{{" not in url_template:
        return []  # no placeholder (a literal brace alone is left as it was)
    if mode != SINGLE:
        return ["URL placeholders such as {{id}} need write mode single (one record per request)."]
    try:
        _compile(url_template)
    except ShapingError as exc:
        return [str(exc)]
    schema = {name: (type_, nullable) for name, type_, nullable in fields}
    problems = []
    for name in url_fields(url_template):
        spec = schema.get(name)
        if spec is None:
            problems.append(f"{{{{{name}}}}} is not a field of this destination's schema.")
        elif spec[0] not in _URL_FIELD_TYPES:
            problems.append(
                f"{{{{{name}}}}} is a {spec[0]} field; URL placeholders take string or integer "
                "fields only."
            )
        elif spec[1]:
            problems.append(
                f"{{{{{name}}}}} is nullable; a URL placeholder needs a field that always has "
                "a value."
            )
    return _unique(problems)


def render_url(url_template: str, record: Mapping[str, Any]) -> str:
    """The URL of one record: each placeholder replaced by the record's value, percent-encoded
    as one path segment or query value. A URL without placeholders is returned as is.

    Raises ShapingError when the template is refused (``url_problems``), a value is missing or
    not a string or integer, a path segment holding a placeholder would be ``.``, ``..`` or
    empty, or the URL is longer than MAX_URL_LENGTH characters.
    """
    compiled = _compile(url_template)
    parts = compiled.parts
    if len(parts) == 1:
        return url_template
    out = [
        part if index % 2 == 0 else _encoded(record, part[0]) for index, part in enumerate(parts)
    ]
    url = "".join(out)
    if len(url) > MAX_URL_LENGTH:
        raise ShapingError(
            f"The URL built for this record is {len(url):,} characters long; the limit is "
            f"{MAX_URL_LENGTH:,}: the value of {_names(parts)} is too long for a URL."
        )
    # Encoded values hold no "/", "?" or "#": the rendered path has the template's segments.
    path = re.split(r"[?#]", url[compiled.path_start :], maxsplit=1)[0]
    for template_segment, segment in zip(compiled.segments, path.split("/"), strict=True):
        if "{{" in template_segment and segment in ("", ".", ".."):
            raise ShapingError(
                f"This record's values make the URL path segment {segment!r} (from "
                f"{template_segment!r}), which servers read as another resource; not sent."
            )
    return url


def _names(parts: Sequence[Any]) -> str:
    return " or ".join(dict.fromkeys(f"{{{{{name}}}}}" for name, _ in parts[1::2]))


def _encoded(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name) if isinstance(record, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ShapingError(
            f"The URL placeholder {{{{{name}}}}} needs a string or integer value; "
            f"this record has {_kind(value)}."
        )
    # safe="": "/", "?", "#", "%", "&", "=", "+" and every non-ASCII byte are encoded.
    return quote(str(value), safe="")


def _kind(value: object) -> str:
    if value is None:
        return "no value"
    return f"a {type(value).__name__} value"


@dataclass(frozen=True, slots=True)
class _Compiled:
    parts: tuple[Any, ...]  # literal, (field, "path" | "query"), literal, ...
    path_start: int  # where the path starts in the template and in every rendered URL
    segments: tuple[str, ...]  # the template's path segments


@functools.lru_cache(maxsize=256)
def _compile(url_template: str) -> _Compiled:
    """The URL as literal text and ``(field, "path" | "query")`` placeholders, alternating
    (literal first and last). Raises ShapingError for a placeholder outside the path and
    query values, or a brace outside a placeholder."""
    if "{{" not in url_template:
        return _Compiled((url_template,), 0, ())
    scheme_end = url_template.find("://")
    authority_end = len(url_template)
    if scheme_end >= 0:
        for stop in "/?#":
            found = url_template.find(stop, scheme_end + 3)
            if found >= 0:
                authority_end = min(authority_end, found)
    if scheme_end < 0 or any(ch in url_template[:authority_end] for ch in "{}"):
        raise _AuthorityError(
            "The scheme, host and port of the URL cannot hold placeholders: only its path and "
            "query values can (e.g. https://api.example.com/users/{{id}})."
        )
    query_start = url_template.find("?", authority_end)
    fragment_start = url_template.find("#", authority_end)
    if fragment_start >= 0 and any(ch in url_template[fragment_start:] for ch in "{}"):
        raise ShapingError("The URL's fragment (after #) cannot hold placeholders.")
    parts: list[Any] = []
    literal_start = 0
    for match in _FIELD.finditer(url_template, authority_end):
        literal = url_template[literal_start : match.start()]
        in_query = 0 <= query_start < match.start()
        if in_query:
            pair = url_template[query_start : match.start()].rpartition("&")[2]
            if "=" not in pair:
                raise ShapingError(
                    "In the query, a placeholder can only be a value (key={{field}}), not a key."
                )
        name = match.group(1).strip()
        if not name or any(ch in name for ch in "/?#&="):
            raise ShapingError(
                "A URL placeholder names one field, e.g. {{id}}, without / ? # & or =."
            )
        parts.extend((literal, (name, "query" if in_query else "path")))
        literal_start = match.end()
    parts.append(url_template[literal_start:])
    if any(ch in part for part in parts[::2] for ch in "{}"):
        raise ShapingError(
            "Braces in the URL must form placeholders such as {{id}}; percent-encode a literal "
            "brace as %7B or %7D."
        )
    path = re.split(r"[?#]", url_template[authority_end:], maxsplit=1)[0]
    return _Compiled(tuple(parts), authority_end, tuple(path.split("/")))
