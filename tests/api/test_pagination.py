"""``page_size`` on every list (SPEC §6): 1 to 1,000, a 400 naming ``page_size`` otherwise.

The lists are found in the OpenAPI schema (every GET whose 200 answer has ``results``), so a
new list endpoint is swept without anyone adding it here.
"""

from __future__ import annotations

import re

import pytest
from drf_spectacular.generators import SchemaGenerator

from osmos.api import MAX_PAGE_SIZE
from tests.support.factories import build_world

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def paginated_list_paths() -> list[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    paths = []
    for url, item in schema["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        content = operation["responses"].get("200", {}).get("content", {})
        body = content.get("application/json", {}).get("schema", {})
        if "$ref" in body:
            body = components[body["$ref"].rsplit("/", 1)[1]]
        if "results" in body.get("properties", {}):
            paths.append(url)
    return sorted(paths)


@pytest.fixture
def world(org_a, member):
    return build_world(org_a, member_user=member)


def concrete(url: str, world) -> str:
    """The schema's path with the world's ids in place of its parameters."""
    ids = {
        "connectors": world.source.pk,
        "runs": world.run.pk,
        "pipelines": world.pipeline.pk,
        "members": world.membership.pk,
        "tokens": world.api_token.pk,
        "invitations": world.invitation.pk,
        "notifications": world.notification.pk,
    }
    return re.sub(r"/(\w+)/\{\w+\}", lambda m: f"/{m.group(1)}/{ids[m.group(1)]}", url)


def test_the_sweep_finds_every_list():
    found = paginated_list_paths()
    # The lists of SPEC §6; a new one joins the sweep by itself.
    for expected in (
        "/api/v1/connectors/",
        "/api/v1/connectors/{id}/records/",
        "/api/v1/connectors/{id}/rejections/",
        "/api/v1/pipelines/",
        "/api/v1/runs/",
        "/api/v1/runs/{id}/failures/",
        "/api/v1/notifications/",
        "/api/v1/members/",
        "/api/v1/invitations/",
        "/api/v1/tokens/",
    ):
        assert expected in found


@pytest.mark.parametrize("url", paginated_list_paths())
def test_every_list_takes_page_size_up_to_1000_and_refuses_more(api_a, world, url):
    path = concrete(url, world)
    assert api_a.get(path, {"page_size": MAX_PAGE_SIZE}).status_code == 200, path
    one = api_a.get(path, {"page_size": 1})
    assert one.status_code == 200
    assert len(one.json()["results"]) <= 1
    for bad in (MAX_PAGE_SIZE + 1, 5000, 0, -1, "abc"):
        response = api_a.get(path, {"page_size": bad})
        assert response.status_code == 400, (path, bad)
        assert response["Content-Type"] == PROBLEM
        assert response.json()["page_size"] == ["page_size must be an integer from 1 to 1000."]


@pytest.mark.parametrize("url", paginated_list_paths())
def test_every_list_documents_the_page_size_limit(url):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    parameters = schema["paths"][url]["get"]["parameters"]
    page_size = next(p for p in parameters if p["name"] == "page_size")
    assert page_size["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}


def test_page_size_pages_through_the_records(api_a, world):
    path = f"/api/v1/connectors/{world.source.pk}/records/"
    first = api_a.get(path, {"page_size": 20}).json()
    assert [r["sequence"] for r in first["results"]] == list(range(1, 21))
    second = api_a.get(first["next"]).json()
    assert [r["sequence"] for r in second["results"]] == list(range(21, 41))
    assert len(api_a.get(path, {"page_size": 1000}).json()["results"]) == 50
