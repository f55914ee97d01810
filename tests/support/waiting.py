"""Waiting for what another thread or process does, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def eventually(check: Callable[[], Any], *, timeout: float = 15.0) -> Any:
    """The first truthy value of ``check()``; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"not true after {timeout} s: {check}"
            return value
        time.sleep(0.05)
