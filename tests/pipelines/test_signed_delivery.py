"""Signed requests end to end (SPEC §5.4): what the engine sends verifies with the
``standardwebhooks`` library, across retries and bisected halves, and during a rotation with
either secret; ``webhook-id`` is the request's Idempotency-Key."""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook

from connectors.services import connector_update, destination_rotate_signing_secret
from pipelines import delivery
from pipelines.models import RunState
from pipelines.probe import destination_test
from pipelines.services import run_create
from tests.support.delivery import make_destination, make_pipeline, make_source
from tests.support.sink import Sink, fail_ids, first, status

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _loopback(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.DELIVERY_RETRY_SCHEDULE = (0.05, 0.05)
    settings.DELIVERY_QUICK_RETRY_SECONDS = 0


def _signed(destination) -> str:
    result = connector_update(connector=destination, destination={"signing": {"enabled": True}})
    destination.refresh_from_db()
    return result.signing_secret


def _verify_all(requests, *secrets: str) -> None:
    assert requests
    for request in requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["webhook-id"] == headers["idempotency-key"]
        for secret in secrets:
            Webhook(secret).verify(request.body, headers)


def test_every_request_of_a_run_verifies_across_retries_and_splits(org_a):
    # Two 503s (a retry of the same chunk), then a bad record that splits the batch.
    with Sink(first(2, status(503), then=fail_ids([7]))) as sink:
        destination = make_destination(org_a, sink.url, batch_size=50, split_failed_batches=True)
        secret = _signed(destination)
        run = run_create(
            pipeline=make_pipeline(org_a, make_source(org_a, count=50), destination),
            trigger="api",
        )
        for _ in range(5):
            delivery.run_execute(run_id=run.id)
            run.refresh_from_db()
            if run.finished_at:
                break
            time.sleep(0.1)  # the compressed schedule's next step
        assert (run.state, run.records_failed) == (RunState.PARTIALLY_FAILED, 1)
        keys = [r.header("Idempotency-Key") for r in sink.requests]
        assert keys[0] == keys[1]  # the retry kept its id (and so its webhook-id)
        assert any(":" in key for key in keys)  # the halves of the split batch
        _verify_all(sink.requests, secret)


def test_during_a_rotation_requests_carry_both_signatures(org_a):
    with Sink() as sink:
        destination = make_destination(org_a, sink.url, batch_size=50)
        old = _signed(destination)
        new = destination_rotate_signing_secret(connector=destination).signing_secret
        run = run_create(
            pipeline=make_pipeline(org_a, make_source(org_a, count=50), destination),
            trigger="api",
        )
        delivery.run_execute(run_id=run.id)
        _verify_all(sink.requests, old, new)
        assert len(sink.requests[0].header("webhook-signature").split()) == 2


def test_the_destination_test_action_signs_its_request(org_a):
    with Sink() as sink:
        destination = make_destination(org_a, sink.url)
        secret = _signed(destination)
        assert destination_test(connector=destination).ok
        _verify_all(sink.requests, secret)


def test_an_unsigned_destination_sends_no_signature(org_a):
    with Sink() as sink:
        destination = make_destination(org_a, sink.url)
        assert destination_test(connector=destination).ok
        assert sink.requests[0].header("webhook-signature") is None
