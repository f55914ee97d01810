"""A worker-like process for the gate tests: `python -m tests.outbound.gate_child <mode> ...`.

send <destination> <rate|none> <concurrency> <seconds> <url> <name>
    acquire permits for `seconds` and POST each to `url` (header X-Sender: name)
hold <destination> <concurrency>
    acquire `concurrency` permits, print "held", then sleep (to be SIGKILLed)
"""

from __future__ import annotations

import os
import sys
import time
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "osmos.settings")

import django

django.setup()

from osmos.outbound.client import DeliveryError, OutboundSession  # noqa: E402
from osmos.outbound.gate import destination_gate  # noqa: E402


def send(destination: str, rate: str, concurrency: str, seconds: str, url: str, name: str) -> None:
    gate = destination_gate(
        uuid.UUID(destination),
        rate_per_second=None if rate == "none" else float(rate),
        max_concurrency=int(concurrency),
    )
    ends = time.monotonic() + float(seconds)
    sent = 0
    with OutboundSession() as session:
        while time.monotonic() < ends:
            permit = gate.acquire(max_wait=0.5)
            if permit is None:
                continue
            with permit:
                try:
                    response = session.send(
                        "POST",
                        url,
                        headers=[("X-Sender", name)],
                        body=b"{}",
                        idempotency_key=f"{name}-{sent}",
                        timeout=5,
                    )
                    gate.observe(response.status, response.headers)
                except DeliveryError as exc:
                    gate.observe(exc.status, exc.headers)
            sent += 1
    print(f"sent {sent}", flush=True)


def hold(destination: str, concurrency: str) -> None:
    gate = destination_gate(
        uuid.UUID(destination), rate_per_second=None, max_concurrency=int(concurrency)
    )
    permits = [gate.acquire(max_wait=10) for _ in range(int(concurrency))]
    assert all(permits), "could not take every slot"
    print("held", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    {"send": send, "hold": hold}[sys.argv[1]](*sys.argv[2:])
