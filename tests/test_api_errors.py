"""Every API error is one RFC 9457 problem document, from one exception handler."""

from __future__ import annotations

import pytest
from django.test import override_settings

from osmos.api import field_errors
from osmos.errors import InputError

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


@pytest.mark.parametrize("debug", [False, True])
def test_an_unknown_api_path_is_a_json_404_problem_in_every_mode(api_a, debug):
    with override_settings(DEBUG=debug):
        for path in ("/api/v1/nope/", "/api/v1/nope", "/api/nothing"):
            response = api_a.get(path)
            assert response.status_code == 404, path
            assert response["Content-Type"] == PROBLEM
            assert response.json() == {
                "type": "about:blank",
                "title": "Not Found",
                "status": 404,
                "detail": "Not found.",
            }


@pytest.mark.parametrize("debug", [False, True])
def test_api_paths_answer_the_same_without_the_trailing_slash(api_a, debug):
    with override_settings(DEBUG=debug):
        with_slash = api_a.get("/api/v1/connectors/")
        without = api_a.get("/api/v1/connectors")
        assert without.status_code == with_slash.status_code == 200
        assert without.json() == with_slash.json()
        created = api_a.post(
            "/api/v1/connectors",
            {"name": "Orders", "direction": "source", "schema": []},
            format="json",
        )
        assert created.status_code == 400  # validated, not redirected nor a 500
        assert created["Content-Type"] == PROBLEM


def test_validation_errors_keep_drf_field_keys_beside_the_problem_members(api_a):
    response = api_a.post(
        "/api/v1/connectors/",
        {"name": "", "direction": "source", "schema": [{"name": "a", "type": "text"}]},
        format="json",
    )
    body = response.json()
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert body["type"] == "about:blank"
    assert body["title"] == "Bad Request"
    assert body["status"] == 400
    assert body["name"] == ["A connector needs a name."]
    assert {"index": 0, "field": "type", "message": body["schema"][0]["message"]} in body["schema"]


def test_authentication_and_permission_errors_are_problems_too(client, member_client):
    anonymous = client.get("/api/v1/connectors/")
    assert anonymous.status_code in (401, 403)
    assert anonymous["Content-Type"] == PROBLEM
    assert anonymous.json()["status"] == anonymous.status_code
    refused = member_client.post("/api/v1/connectors/", {}, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["title"] == "Forbidden"


def test_a_non_json_body_is_a_415_problem(api_a):
    response = api_a.post("/api/v1/connectors/", "name=x", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["status"] == 415


def test_field_errors_nest_paths_and_itemize_lists():
    errors = [
        InputError("name", "taken"),
        InputError("schema", "needs a field"),
        InputError("schema.type", "bad type", index=2),
        InputError("destination", "not an object"),
        InputError("destination.url", "unsafe"),
        InputError("destination.headers.value", "no value", index=0),
    ]
    assert field_errors(
        errors, lists=("schema", "destination.headers"), objects=("destination",)
    ) == {
        "name": ["taken"],
        "schema": [
            {"index": None, "field": None, "message": "needs a field"},
            {"index": 2, "field": "type", "message": "bad type"},
        ],
        "destination": {
            "non_field_errors": ["not an object"],
            "url": ["unsafe"],
            "headers": [{"index": 0, "field": "value", "message": "no value"}],
        },
    }
