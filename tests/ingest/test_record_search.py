"""Finding stored records by a field's value (SPEC §5.6): ``?match=<field>:<JSON value>``."""

from __future__ import annotations

import json

import pytest

from connectors.services import connector_create
from ingest.services import records_ingest

SCHEMA = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "email", "type": "string", "nullable": False},
    {"name": "note", "type": "string", "nullable": True},
    {"name": "vip", "type": "boolean", "nullable": True},
]


@pytest.fixture
def source(org_a):
    connector = connector_create(
        organization=org_a, name="Orders", direction="source", fields=SCHEMA
    ).connector
    records = [
        {
            "id": i,
            "email": f"u{i % 7}@x.example",
            "note": None if i % 10 == 0 else str(i),
            "vip": i % 25 == 0,
        }
        for i in range(1, 201)
    ]
    records.append({"id": 14, "email": "again@x.example", "note": "14", "vip": None})
    result = records_ingest(
        source=connector.source,
        body=json.dumps(records).encode(),
        content_type="application/json",
        content_encoding=None,
        idempotency_key=None,
    )
    assert result.status == 200
    return connector


def search(client, source, match: str, **params):
    return client.get(f"/api/v1/connectors/{source.pk}/records/", {"match": match, **params})


def test_an_integer_matches_newest_first_and_not_its_string(member_client, source):
    body = search(member_client, source, "id:14").json()
    assert [r["sequence"] for r in body["results"]] == [201, 14]
    assert body["search"] == {
        "complete": True,
        "scanned_down_to": 0,
        "detail": "Every record of the source was examined.",
    }
    assert body["next"] is None
    # "14" the string is another value: no id is the string "14".
    assert search(member_client, source, 'id:"14"').json()["results"] == []
    strings = search(member_client, source, 'note:"14"').json()["results"]
    assert [r["sequence"] for r in strings] == [201, 14]


def test_strings_nulls_and_booleans_match_exactly(member_client, source):
    emails = search(member_client, source, 'email:"u3@x.example"').json()["results"]
    assert {r["record"]["id"] % 7 for r in emails} == {3}
    assert len(emails) == 29  # 3, 10, …, 199
    nulls = search(member_client, source, "note:null").json()["results"]
    assert [r["record"]["id"] for r in nulls] == list(range(200, 0, -10))
    vips = search(member_client, source, "vip:true").json()["results"]
    assert [r["record"]["id"] for r in vips] == [200, 175, 150, 125, 100, 75, 50, 25]


def test_pages_follow_next_below_the_last_match(member_client, source):
    first = search(member_client, source, 'email:"u3@x.example"', page_size=10).json()
    assert len(first["results"]) == 10
    assert "before=" in first["next"]
    second = member_client.get(first["next"]).json()
    assert second["results"][0]["sequence"] < first["results"][-1]["sequence"]
    seen = [r["sequence"] for r in first["results"] + second["results"]]
    assert len(seen) == len(set(seen)) == 20


def test_the_time_limit_gives_a_clear_answer_and_a_way_on(member_client, source, settings):
    settings.RECORD_SEARCH_SECONDS = 0
    body = search(member_client, source, "id:14").json()
    assert body["search"]["complete"] is False
    assert "stopped after 0 s" in body["search"]["detail"]
    assert body["next"] is not None


@pytest.mark.parametrize(
    ("match", "message"),
    [
        ("id", "Use match=<field>:<JSON value>"),
        ("nope:1", "no field 'nope'"),
        ("email:a@b.c", "is not a JSON value"),
        ('id:{"a":1}', "single value"),
    ],
)
def test_a_bad_match_is_a_400_that_says_why(member_client, source, match, message):
    answer = search(member_client, source, match)
    assert answer.status_code == 400
    assert message in json.dumps(answer.json())


def test_another_organizations_source_is_404(outsider_client, source):
    assert search(outsider_client, source, "id:14").status_code == 404
