"""The broker goes away while runs are triggered, and comes back later: no run is lost.

Everything is a real process: this test's own Redis (never the machine's shared one), the
web app under gunicorn, a Dramatiq worker and the scheduler, all on the test database. One
run is enqueued and then lost with the broker (it keeps nothing on disk); two more are
triggered through the API while it is down. Each trigger answers 202 with a queued run (or
a clear error, leaving nothing behind); once the broker is back, the scheduler's sweep
enqueues the runs again and the worker delivers every record.
"""

from __future__ import annotations

import shutil
import sys

import pytest
import requests

from pipelines.models import Run, RunState
from pipelines.services import pipeline_create
from tests.reliability.processes import Children, OwnRedis, child_env, free_port, wait_for
from tests.support.factories import build_world
from tests.support.sink import Sink

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.reliability,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


@pytest.fixture
def own_redis():
    redis = OwnRedis(free_port())
    yield redis
    redis.stop()


@pytest.fixture
def children(tmp_path):
    group = Children(tmp_path)
    yield group
    group.kill_all()


def test_runs_triggered_while_the_broker_is_down_are_all_executed_when_it_returns(
    org_a, member, own_redis, children
):
    with Sink() as sink:
        world = build_world(org_a, member_user=member, sink_url=sink.url)
        pipelines = [world.pipeline] + [
            pipeline_create(
                organization=org_a,
                name=f"Outage {i}",
                source_id=world.source.id,
                destination_id=world.destination.id,
                sync_mode="full",
            )
            for i in (2, 3)
        ]
        env = child_env(
            DRAMATIQ_BROKER_URL=own_redis.url,
            SCHEDULER_INTERVAL_SECONDS="0.5",
            RUN_ENQUEUE_GRACE_SECONDS="1",
            RUN_REQUEUE_AFTER_SECONDS="10",
        )
        web_port = free_port()
        own_redis.start()
        web = [
            sys.executable,
            "-m",
            "gunicorn",
            "osmos.wsgi",
            "--bind",
            f"127.0.0.1:{web_port}",
            "--workers",
            "1",
            "--timeout",
            "60",
        ]
        children.start_command(web, env, "web")  # the app's production server
        base = f"http://127.0.0.1:{web_port}"
        wait_for(lambda: _up(base), timeout=30, what="the web app to start")
        headers = {"Authorization": f"Bearer {world.api_token_secret}"}

        def trigger(pipeline) -> requests.Response:
            return requests.post(
                f"{base}/api/v1/pipelines/{pipeline.pk}/run/", headers=headers, timeout=30
            )

        # 1: enqueued while the broker is up, then lost with it (no worker was running).
        first = trigger(pipelines[0])
        assert first.status_code == 202, first.text
        assert Run.objects.get(pk=first.json()["id"]).enqueued_at is not None
        own_redis.stop()
        # 2 and 3: triggered while the broker is down.
        answers = [trigger(p) for p in pipelines[1:]]
        for answer in answers:
            assert answer.status_code in (202, 503), answer.text
            assert answer.headers["Content-Type"].startswith("application/json")
        accepted = [first.json()["id"]] + [a.json()["id"] for a in answers if a.status_code == 202]
        refused = [p for p, a in zip(pipelines[1:], answers, strict=True) if a.status_code != 202]
        # A refused trigger leaves nothing half-done: no run of that pipeline exists.
        assert not Run.objects.filter(pipeline__in=refused).exists()
        assert Run.objects.filter(state=RunState.QUEUED).count() == len(accepted)

        own_redis.start()
        children.start(["rundramatiq", "--processes", "1", "--threads", "2"], env, "worker")
        children.start(["run_scheduler"], env, "scheduler")
        try:
            wait_for(
                lambda: all(
                    Run.objects.get(pk=run_id).finished_at is not None for run_id in accepted
                ),
                timeout=90,
                what="every accepted run to finish",
            )
        except AssertionError:
            raise AssertionError(children.logs()) from None
        received = len(sink.requests)

    for run_id in accepted:
        run = Run.objects.get(pk=run_id)
        assert run.state == RunState.SUCCEEDED, run
        assert (run.records_total, run.records_delivered, run.records_failed) == (50, 50, 0)
    assert received >= len(accepted)


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/login/", timeout=2).status_code == 200
    except requests.RequestException:
        return False
