"""The one error model of the domain: what services raise when they refuse a request.

Services never choose an HTTP status. They raise one of these classes, and the layer that
answers picks the status from the class: ``osmos.api.STATUS_OF`` for the API (rendered as an
RFC 9457 problem by ``osmos.api.exception_handler``), the ingest endpoint's own table for
ingest, and ``osmos.forms.attach_input_errors`` for the pages.

``InputError`` is one problem with one value: ``field`` is the path of the value as the
API's JSON shows it (``name``, ``destination.url``, ``schema.type``), ``index`` the position
in the list the path goes through (``schema.type`` at index 2 is the type of the third schema
field), ``None`` when the path holds no list. ``field`` is ``None`` for a problem with a whole
item (an ingested record that is not an object).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class InputError:
    field: str | None
    message: str
    index: int | None = None


class DomainError(Exception):
    """A refused request: ``detail`` says why in one sentence, ``extra`` adds named facts
    (``sample_count``, ``max_body_bytes``…) that clients may act on. Nothing was written."""

    def __init__(self, detail: str, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, **self.extra}


class InvalidInput(DomainError):
    """Values that break the rules, each an :class:`InputError`."""

    def __init__(self, errors: Sequence[InputError], detail: str | None = None, **extra: Any):
        self.errors = list(errors)
        if detail is None:
            detail = (
                self.errors[0].message
                if len(self.errors) == 1
                else "Invalid input; see the errors by field."
            )
        super().__init__(detail, **extra)


class Malformed(DomainError):
    """The request cannot be read at all: not JSON, a corrupt gzip stream, a bad header."""


class Missing(DomainError):
    """What the request names does not exist (any more)."""


class Conflict(DomainError):
    """The current state forbids it: a connector still in use, a source short of samples."""


class LengthRequired(DomainError):
    """The request did not say how long its body is."""


class TooLarge(DomainError):
    """The request is over a size limit (``extra`` names the limit)."""


class UnsupportedFormat(DomainError):
    """The request's content type or encoding is not one we read."""


class Mismatch(DomainError):
    """The request contradicts an earlier one (an idempotency key reused for another body)."""


class Unauthorized(DomainError):
    """The request does not prove who sent it (a missing, wrong or stale signature)."""


class TooManyRequests(DomainError):
    """Over a rate or a quota; ``headers`` say when to come back (``Retry-After``,
    ``RateLimit-*``)."""

    def __init__(self, detail: str, *, headers: dict[str, str], **extra: Any):
        super().__init__(detail, **extra)
        self.headers = headers


def raise_if_any(errors: Sequence[InputError]) -> None:
    if errors:
        raise InvalidInput(errors)
