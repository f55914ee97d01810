"""``LOG_FORMAT=json``: one JSON object per log line, with the work's context.

Fields: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message`` (already redacted by the
loggers' filters), ``request_id``, ``organization`` and ``run`` when known, and
``exception`` (the formatted traceback) when there is one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

from osmos.observability import context


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(context.current())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # default=str: a log argument that is not JSON (a UUID, a Decimal) still logs.
        return orjson.dumps(entry, default=str).decode()
