"""Keeps secret tokens out of log lines.

Django's request logger writes the path of every 4xx/5xx answer ("Not Found: /ingest/<token>/"),
and an ingest URL's path *is* its secret. ``RedactSecretsFilter`` replaces anything shaped like
one of our tokens (``osm_`` + 40 or more URL-safe characters: ingest and API tokens alike) in
the message and its arguments before any handler sees the record.
"""

from __future__ import annotations

import logging
import re

# osmos.tenancy.models.TOKEN_PREFIX; not imported, because logging is configured before the
# models can be (a test checks that the two agree).
TOKEN_PREFIX = "osm_"
_TOKEN = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{20,}")
REDACTED = TOKEN_PREFIX + "…redacted"


def redact(text: str) -> str:
    return _TOKEN.sub(REDACTED, text)


def _redact_value(value):
    return redact(value) if isinstance(value, str) else value


class RedactSecretsFilter(logging.Filter):
    """Attach to a logger (not a handler) so that every handler, tests' included, gets the
    redacted record; it never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_value(v) for k, v in record.args.items()}
        return True
