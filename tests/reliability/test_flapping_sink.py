"""A customer's API that flaps: 503s, dropped connections, answers slower than the timeout.

Each request (identified by its Idempotency-Key) fails a seeded random number of times
(0 to 3) in a random way, then is accepted: so with 5 attempts every record must end
delivered, none failed, every record reached the sink, and every repeat of a record
carried the same Idempotency-Key. The engine runs in this process (what the actor calls,
again each time the run's wait between attempts is over: the test plays the broker's
part); the sink is a real HTTP server on loopback.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict

import pytest

from pipelines import delivery
from pipelines.models import RecordFailure, RunState
from pipelines.services import run_create
from tests.support.factories import build_world
from tests.support.sink import DROP, Answer, Sink, SinkRequest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.reliability]

FAILURES = ("503", "429", "drop", "slow")


class Flapping:
    """Fails each distinct request 0 to 3 times (seeded), then accepts it."""

    def __init__(self, seed: int, *, timeout: float):
        self.rng = random.Random(seed)
        self.timeout = timeout
        self.plans: dict[str, list[str]] = {}
        self.accepted: dict[str, set[int]] = defaultdict(set)  # key → record ids accepted
        self.lock = threading.Lock()

    def __call__(self, request: SinkRequest):
        key = request.header("Idempotency-Key") or ""
        with self.lock:
            if key not in self.plans:
                self.plans[key] = [self.rng.choice(FAILURES) for _ in range(self.rng.randint(0, 3))]
            plan = self.plans[key]
            failure = plan.pop(0) if plan else None
        if failure == "503":
            return Answer(503, b'{"error": "maintenance"}')
        if failure == "429":
            return Answer(429, b"{}", headers=(("Retry-After", "0"),))
        if failure == "drop":
            return DROP
        if failure == "slow":
            # Past the client's timeout: the client gives up and retries; this answer is lost.
            return Answer(503, b"{}", delay=self.timeout + 0.5)
        body = json.loads(request.body)
        with self.lock:
            self.accepted[key] |= {r["id"] for r in (body if isinstance(body, list) else [body])}
        return Answer(200, b'{"ok": true}')


@pytest.fixture
def fast_retries(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DELIVERY_RETRY_SCHEDULE = (0.05, 0.05, 0.05, 0.05)
    settings.DELIVERY_QUICK_RETRY_SECONDS = 0
    settings.DELIVERY_RETRY_AFTER_CAP_SECONDS = 0.1


@pytest.mark.parametrize(
    ("write_mode", "seed", "client"),
    [("batch", 1, "curl"), ("batch", 2, "curl"), ("single", 3, "curl"), ("single", 3, "threads")],
)
def test_every_record_is_delivered_through_a_flapping_sink(
    org_a, member, fast_retries, settings, write_mode, seed, client
):
    settings.DELIVERY_SINGLE_CLIENT = client  # single mode's two senders (batch: neither)
    flapping = Flapping(seed, timeout=1)
    with Sink(flapping) as sink:
        world = build_world(org_a, member_user=member, sink_url=sink.url)
        destination = world.destination.destination
        destination.write_mode = write_mode
        destination.batch_size = 5
        destination.timeout_seconds = 1
        destination.save()
        run = run_create(pipeline=world.pipeline, trigger="api")
        deadline = time.monotonic() + 120
        while run.finished_at is None and time.monotonic() < deadline:
            delivery.run_execute(run_id=run.pk)  # a no-op until the run's wait is over
            run.refresh_from_db()
            time.sleep(0.02)
        requests = sink.requests

    run.refresh_from_db()
    failed = list(RecordFailure.objects.filter(run=run).values_list("sequence", "reason"))
    assert failed == []
    assert (run.state, run.records_total, run.records_delivered) == (RunState.SUCCEEDED, 50, 50)
    accepted = set().union(*flapping.accepted.values())
    assert accepted == set(range(1, 51)), "a record never reached the sink"
    # The sink really flapped (else this test proves nothing): some requests were repeats.
    assert len(requests) > len(flapping.plans)
    assert any(flapping.plans.values()) is False  # every planned failure was consumed
    keys_by_record: dict[int, set[str]] = defaultdict(set)
    for request in requests:
        body = json.loads(request.body)
        for record in body if isinstance(body, list) else [body]:
            keys_by_record[record["id"]].add(request.header("Idempotency-Key"))
    assert all(len(keys) == 1 for keys in keys_by_record.values()), "a retry changed its key"
