"""Finding stored records by a field's value (SPEC §5.6: "where did record X go?").

There is deliberately no index on record contents: ingest speed comes first, and a GIN index
on every record would cost every insert. A search is a **bounded scan**, newest first, in
steps of settings.RECORD_SEARCH_STEP_ROWS sequences: each step reads one range of the
``(connector, sequence)`` unique index and compares one JSON key per row
(``data -> 'field' = '<value>'::jsonb`` on PostgreSQL, type-exact: ``14`` is not ``"14"``).
It stops when it found the page it was asked for, reached the first record, or spent
settings.RECORD_SEARCH_SECONDS; then it says how far down it got, and ``before=`` continues
from there. Cost grows with the records scanned, not with the table: measured on
PostgreSQL, about 1 s per ~1,000,000 small records scanned (docs/operations.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.db.models import JSONField, Max, Value
from django.db.models.fields.json import KeyTransform

from connectors.models import Connector
from ingest.models import Record
from osmos.tenancy.models import Organization


class BadMatch(ValueError):
    """The ``match`` text is not ``<field>:<JSON value>``; the message says why."""


def parse_match(text: str, *, fields: list[str]) -> tuple[str, object]:
    """``"id:14"`` → ``("id", 14)``; ``'email:"a@b.c"'`` → ``("email", "a@b.c")``."""
    field, colon, raw = text.partition(":")
    if not colon or not field:
        raise BadMatch('Use match=<field>:<JSON value>, e.g. match=id:14 or match=email:"a@b.c".')
    if field not in fields:
        raise BadMatch(f"The source has no field {field!r}.")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadMatch(
            f'{raw[:50]!r} is not a JSON value: quote strings, e.g. match={field}:"{raw[:20]}".'
        ) from None
    if isinstance(value, dict | list):
        raise BadMatch("Match a single value (a string, number, boolean or null).")
    return field, value


@dataclass(frozen=True)
class Matches:
    records: list[Record]
    complete: bool  # False: stopped by the time limit before the first record
    scanned_down_to: int  # the lowest sequence examined (0 when every record was)


def records_matching(
    *,
    organization: Organization,
    connector: Connector,
    field: str,
    value: object,
    limit: int = 50,
    before: int | None = None,
) -> Matches:
    """Records whose ``field`` equals ``value``, newest first, below sequence ``before``."""
    records = Record.objects.for_organization(organization).filter(connector=connector)
    upper = before - 1 if before is not None else records.aggregate(m=Max("sequence"))["m"] or 0
    matching = records.annotate(_v=KeyTransform(field, "data")).filter(
        _v=Value(value, output_field=JSONField())
    )
    deadline = time.monotonic() + settings.RECORD_SEARCH_SECONDS
    found: list[Record] = []
    step = settings.RECORD_SEARCH_STEP_ROWS
    while upper > 0 and len(found) < limit:
        if time.monotonic() > deadline:
            return Matches(records=found, complete=False, scanned_down_to=upper + 1)
        lower = max(0, upper - step)
        found += matching.filter(sequence__gt=lower, sequence__lte=upper).order_by("-sequence")[
            : limit - len(found)
        ]
        upper = lower
    if len(found) == limit:
        return Matches(records=found, complete=True, scanned_down_to=found[-1].sequence)
    return Matches(records=found, complete=True, scanned_down_to=0)
