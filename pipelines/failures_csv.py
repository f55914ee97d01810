"""A run's failed records as CSV (SPEC §6): ``failures/?format=csv`` and ``failures/csv/``."""

from __future__ import annotations

import csv
from collections.abc import Iterator

import orjson
from rest_framework import renderers


class _Echo:
    def write(self, value: str) -> str:
        return value


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    # A spreadsheet would run "=…" from a customer's API answer as a formula.
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def failures_csv_rows(failures) -> Iterator[str]:
    """The CSV lines of failure rows, header first; the query is read in batches."""
    writer = csv.writer(_Echo())
    yield writer.writerow(["sequence", "http_status", "reason", "response_excerpt", "record"])
    for failure in failures.iterator(chunk_size=2000):
        yield writer.writerow(
            [
                failure.sequence,
                "" if failure.http_status is None else failure.http_status,
                _cell(failure.reason),
                _cell(failure.response_excerpt),
                orjson.dumps(failure.record).decode(),
            ]
        )


class CSVRenderer(renderers.BaseRenderer):
    """Only makes ``?format=csv`` acceptable; the view streams the CSV itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return orjson.dumps(data)  # errors (404, 403) under ?format=csv
