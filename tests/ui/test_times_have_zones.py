"""Every time a page shows carries its zone (``2025-03-01 10:00:04 UTC``): run times,
failures, notifications, records, tokens, invitations, schedules, health.

The scan reads the text of each rendered page (tags removed, attributes such as
``datetime="…+00:00"`` not counted) and finds every timestamp: a date with a time, or a time
with seconds. Each must be followed by a zone. Times of day without a date (``Every day at
07:00``) are read in the schedule's own zone, which the page names beside them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from connectors.services import source_rotate_token
from pipelines.models import Run, RunState
from pipelines.services import pipeline_update
from tests.support.factories import build_world, page_client

pytestmark = pytest.mark.django_db

TIMESTAMP = re.compile(r"(?:\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?|\b\d{2}:\d{2}:\d{2})")
ZONE = re.compile(r"\s*(?:UTC|GMT|[A-Z]{2,5}|[+-]\d{2}(?::?\d{2})?|Z)\b")


def times_without_zone(html: str) -> list[str]:
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    text = unescape(re.sub(r"<[^>]+>", " ", text))
    text = re.sub(r"\s+", " ", text)
    found = []
    for match in TIMESTAMP.finditer(text):
        if not ZONE.match(text, match.end()):
            found.append(text[max(0, match.start() - 40) : match.end() + 20].strip())
    return found


def test_the_scan_finds_a_time_without_its_zone():
    assert times_without_zone("<td>2025-03-01 10:00</td>") == ["2025-03-01 10:00"]
    assert times_without_zone("<p>run of 10:00:04 (failed)</p>") == ["run of 10:00:04 (failed)"]
    assert times_without_zone('<time datetime="2025-03-01T10:00:00+00:00">x</time>') == []
    assert times_without_zone("<td>2025-03-01 10:00:04 UTC</td><td>Every day at 07:00</td>") == []


@pytest.fixture
def world(org_a, member):
    world = build_world(org_a, member_user=member)
    now = timezone.now()
    Run.objects.filter(pk=world.run.pk).update(
        started_at=now - timedelta(seconds=5), finished_at=now
    )
    Run.objects.create(
        organization=org_a,
        pipeline=world.pipeline,
        trigger="retry",
        parent=world.run,
        state=RunState.WAITING,
        waiting_until=now + timedelta(minutes=2),
        started_at=now,
        last_error="Attempt 1 failed: 503",
    )
    pipeline_update(
        pipeline=world.pipeline, schedule={"cron": "0 7 * * *", "timezone": "Europe/Paris"}
    )
    source_rotate_token(connector=world.source, grace_hours=1)  # "the old URL works until …"
    world.source.refresh_from_db()
    return world


def test_no_page_shows_a_time_without_its_zone(owner, world, client):
    # A rejected ingest request, shown on the source page with its time.
    assert (
        client.post(
            f"/ingest/{world.ingest_token}/", "not json", content_type="application/json"
        ).status_code
        == 400
    )
    page = page_client(owner)
    paths = [
        "/",
        "/connectors/",
        f"/connectors/{world.source.pk}/",
        f"/connectors/{world.destination.pk}/",
        "/pipelines/",
        f"/pipelines/{world.pipeline.pk}/",
        f"/pipelines/runs/{world.run.pk}/",
        f"/pipelines/runs/{world.run.retries.get().pk}/",
        "/notifications/",
        "/tokens/",
        "/members/",
        reverse("record_search", args=[world.source.pk]) + "?sequence=7",
        reverse("record_detail", args=[world.source.pk, 7]),
    ]
    problems = {}
    shown = 0
    for path in paths:
        response = page.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        shown += len(TIMESTAMP.findall(re.sub(r"<[^>]+>", " ", html)))
        if missing := times_without_zone(html):
            problems[path] = missing
    assert not problems, problems
    assert shown >= 20  # the pages really show times: the scan is not vacuous
