"""API fuzzing with schemathesis against the served OpenAPI schema, as a tenant (token).

Every operation of ``/api/v1/schema/`` gets generated requests (valid and invalid bodies,
path and query parameters) on a live server; the checks: no 5xx, and status code, content
type and body all as the schema declares. Half the cases aim at organization A's real
objects (so details, edits, runs and failures are reached, not only 404s). Bounded: a few
examples per operation.
"""

from __future__ import annotations

import random

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.factories import build_world

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.reliability]

EXAMPLES_PER_OPERATION = 12
# Errors every operation may answer without documenting each one (DRF's generic errors).
GENERIC_ERRORS = {400, 401, 403, 404, 405, 406, 415}


def documented_or_generic_status(ctx, response, case):
    """The status is documented for the operation, or a generic client error."""
    if response.status_code in GENERIC_ERRORS:
        return None
    return status_code_conformance(ctx, response, case)


CHECKS = [
    not_a_server_error,
    documented_or_generic_status,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def fuzzed_tenant(live_server, org_a, member, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    # Destination tests and runs call this closed port: connection refused, fast.
    return build_world(org_a, member_user=member, sink_url="http://127.0.0.1:9/hook")


_choice = random.Random(7)


def _aim_at_real_objects(case, world) -> None:
    """Replace a generated ``{id}`` with one of A's objects, half of the time."""
    if "id" not in (case.path_parameters or {}) or _choice.random() < 0.5:
        return
    collection = case.path.strip("/").split("/")[0]
    ids = {
        "connectors": [world.source.pk, world.destination.pk],
        "pipelines": [world.pipeline.pk],
        "runs": [world.run.pk],
    }.get(collection)
    if ids:
        case.path_parameters["id"] = str(_choice.choice(ids))


def test_the_api_never_answers_5xx_and_always_matches_its_schema(live_server, fuzzed_tenant):
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/")
    headers = {"Authorization": f"Bearer {fuzzed_tenant.api_token_secret}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]

    for operation in operations:

        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def fuzz(case):
            _aim_at_real_objects(case, fuzzed_tenant)
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as failure:  # report every operation
            failures.append(f"{operation.label}: {failure}"[:3000])
    assert not failures, "\n\n".join(failures)


def _operation(schema, method: str, path: str):
    return next(
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if op.method.upper() == method and op.path == path
    )


def test_a_destination_without_settings_answers_400_as_documented(live_server, fuzzed_tenant):
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/")
    operation = _operation(schema, "POST", "/api/v1/connectors/")
    case = operation.Case(
        body={
            "name": "No settings",
            "direction": "destination",
            "schema": [{"name": "id", "type": "integer", "nullable": False}],
        },
        media_type="application/json",
    )
    headers = {"Authorization": f"Bearer {fuzzed_tenant.api_token_secret}"}
    response = case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
    assert response.status_code == 400
    assert response.json()["destination"] == {
        "non_field_errors": ["A destination needs its settings."]
    }
