"""The OpenAPI schema documents every answer of every operation (SPEC §6): the conventions'
statuses on every API operation, with a problem document body, and the ingest endpoint."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def api_operations(schema):
    for url, item in schema["paths"].items():
        if url.startswith("/api/v1/"):
            for method, operation in item.items():
                yield url, method, operation


def test_every_api_operation_documents_the_conventions_answers(schema):
    checked = 0
    for url, method, operation in api_operations(schema):
        responses = operation["responses"]
        expected = {"401", "403"}
        if "{" in url:
            expected.add("404")
        if method in ("post", "patch", "put"):
            expected |= {"400", "413"}
        if "requestBody" in operation:
            expected.add("415")
        if method == "post":
            expected |= {"409", "422"}
            names = [p["name"] for p in operation["parameters"]]
            assert "Idempotency-Key" in names, (method, url)
        assert expected <= set(responses), (method, url, expected - set(responses))
        for code, response in responses.items():
            if code.startswith(("4", "5")):
                assert list(response["content"]) == [PROBLEM], (method, url, code)
                body = response["content"][PROBLEM]["schema"]
                refs = [body.get("$ref")] + [part.get("$ref") for part in body.get("allOf", [])]
                assert "#/components/schemas/ProblemDetails" in refs, (method, url, code)
                assert response["description"], (method, url, code)
        checked += 1
    assert checked > 40


def test_request_bodies_are_json_only(schema):
    for url, _method, operation in api_operations(schema):
        if "requestBody" in operation:
            assert list(operation["requestBody"]["content"]) == ["application/json"], url


def test_the_ingest_endpoint_is_documented_with_every_answer(schema):
    operation = schema["paths"]["/ingest/{token}/"]["post"]
    assert operation["security"] == []
    assert set(operation["responses"]) >= {
        "200",
        "400",
        "401",
        "404",
        "405",
        "411",
        "413",
        "415",
        "422",
        "429",
        "503",
    }
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert {"Idempotency-Key", "Content-Encoding", "webhook-signature"} <= headers
    assert "Transfer-Encoding: chunked" in operation["description"]
    assert "application/x-ndjson" in operation["description"]


def test_the_failures_csv_is_its_own_operation(schema):
    operation = schema["paths"]["/api/v1/runs/{id}/failures/csv/"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["text/csv"]
