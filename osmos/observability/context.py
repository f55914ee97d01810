"""What the current thread is working on, for log lines: request id, organization, run.

Context variables, so that a worker thread's run and a web request's id never leak into
another thread's lines (Dramatiq's worker threads and the web server's threads share one
process in the embedded mode).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
organization: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "organization", default=None
)
run: contextvars.ContextVar[str | None] = contextvars.ContextVar("run", default=None)

_VARS = {"request_id": request_id, "organization": organization, "run": run}


@contextmanager
def bind(**values: object) -> Iterator[None]:
    """Set some of ``request_id``, ``organization``, ``run`` (as text) for the block."""
    tokens = []
    try:
        for name, value in values.items():
            var = _VARS[name]  # a KeyError names a typo at once
            tokens.append((var, var.set(None if value is None else str(value))))
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current() -> dict[str, str]:
    """The values that are set, by name."""
    return {name: value for name, var in _VARS.items() if (value := var.get()) is not None}
