"""An integrator's whole journey with a client generated from ``/api/v1/schema/`` (SPEC §6).

``openapi-python-client`` (a dev dependency, runs offline) generates a Python package from the
schema the live server serves; every call below goes through that package, none is written by
hand: create a source, ingest 50 records, save, create a destination (the loopback sink),
create a pipeline, run it, poll the run, list its failures, download them as CSV, retry them.
Errors are parsed into the documented models too (401, 404, 409, 422, idempotent replays).

The package is generated once per session (in the session's tmp dir) per schema version.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import io
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from tests.support.actors import running_worker
from tests.support.factories import make_token
from tests.support.schemas import ORDERS, order_records
from tests.support.sink import Sink, fail_ids

pytestmark = pytest.mark.django_db(transaction=True)

# No post hooks: they would run ruff over the generated code (slow, and not needed to use it).
GENERATOR_CONFIG = "post_hooks: []\n"
FAILING_IDS = {3, 17}


@pytest.fixture(scope="session")
def client_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("generated_clients")


def generate(schema: bytes, cache: Path) -> str:
    """Generate (or reuse) the client package for ``schema``; returns its import name."""
    name = "osmos_client_" + hashlib.sha256(schema).hexdigest()[:12]
    target = cache / name
    if not target.exists():
        (cache / f"{name}.json").write_bytes(schema)
        (cache / "config.yaml").write_text(GENERATOR_CONFIG)
        bin_dir = Path(sys.executable).parent
        result = subprocess.run(
            [
                str(bin_dir / "openapi-python-client"),
                "generate",
                "--path",
                str(cache / f"{name}.json"),
                "--output-path",
                str(target),
                "--meta",
                "none",
                "--config",
                str(cache / "config.yaml"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        # A warning means an operation or a model was left out of the client.
        assert "warning" not in output.lower(), output
    if str(cache) not in sys.path:
        sys.path.insert(0, str(cache))
    return name


@pytest.fixture
def api(live_server, client_cache) -> SimpleNamespace:
    """The generated package's modules, generated from the schema the live server serves."""
    schema = requests.get(f"{live_server.url}/api/v1/schema/?format=json", timeout=30)
    assert schema.status_code == 200
    package = generate(schema.content, client_cache)

    def load(module: str):
        return importlib.import_module(f"{package}.{module}")

    return SimpleNamespace(
        client=load("client"),
        models=load("models"),
        types=load("types"),
        connectors_create=load("api.connectors.connectors_create"),
        connectors_retrieve=load("api.connectors.connectors_retrieve"),
        connectors_save=load("api.connectors.connectors_save_create"),
        ingest=load("api.ingest.ingest_records"),
        pipelines_create=load("api.pipelines.pipelines_create"),
        pipelines_run=load("api.pipelines.pipelines_run_create"),
        runs_retrieve=load("api.runs.runs_retrieve"),
        runs_failures=load("api.runs.runs_failures_list"),
        runs_failures_csv=load("api.runs.runs_failures_csv_retrieve"),
        runs_retry=load("api.runs.runs_retry_failed_create"),
    )


def wait_until_finished(api, client, run_id, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        answer = api.runs_retrieve.sync_detailed(id=run_id, client=client)
        assert answer.status_code == 200
        run = answer.parsed
        if run.state.value in ("succeeded", "partially_failed", "failed", "cancelled"):
            return run
        assert time.monotonic() < deadline, f"run still {run.state.value}"
        time.sleep(0.2)


def test_the_whole_flow_through_a_generated_client(api, live_server, org_a):
    m = api.models
    client = api.client.AuthenticatedClient(base_url=live_server.url, token=make_token(org_a))
    fields = [
        m.SchemaFieldRequest(name=f["name"], type_=m.TypeEnum(f["type"]), nullable=f["nullable"])
        for f in ORDERS
    ]

    # A source, and its ingest URL (shown in this answer only).
    created = api.connectors_create.sync_detailed(
        client=client,
        body=m.ConnectorCreateRequest(
            name="Orders", direction=m.DirectionEnum.SOURCE, schema=fields
        ),
    )
    assert created.status_code == 201, created.content
    source = created.parsed
    assert isinstance(source, m.Connector)
    ingest_token = source.source.ingest_url.rstrip("/").rsplit("/", 1)[1]

    # 50 records through the ingest endpoint (no API token: the URL is the credential).
    public = api.client.Client(base_url=live_server.url)
    records = order_records(50, start=1)
    ingested = api.ingest.sync_detailed(
        token=ingest_token,
        client=public,
        body=[m.IngestRecord.from_dict(r) for r in records],
        idempotency_key="first-batch",
    )
    assert ingested.status_code == 200, ingested.content
    assert (ingested.parsed.accepted, ingested.parsed.state.value) == (50, "ready")
    invalid = api.ingest.sync_detailed(
        token=ingest_token, client=public, body=m.IngestRecord.from_dict({"id": "x"})
    )
    assert invalid.status_code == 422
    assert isinstance(invalid.parsed, m.IngestRefused)
    assert invalid.parsed.errors[0].field == "id"

    saved = api.connectors_save.sync_detailed(id=source.id, client=client)
    assert saved.status_code == 200
    assert saved.parsed.source.state.value == "active"

    with Sink(fail_ids(FAILING_IDS)) as sink, running_worker():
        destination = api.connectors_create.sync_detailed(
            client=client,
            body=m.ConnectorCreateRequest(
                name="CRM",
                direction=m.DirectionEnum.DESTINATION,
                schema=fields,
                destination=m.DestinationRequest(
                    url=sink.url, batch_size=10, split_failed_batches=True
                ),
            ),
        )
        assert destination.status_code == 201, destination.content

        pipeline = api.pipelines_create.sync_detailed(
            client=client,
            body=m.PipelineWriteRequest(
                name="Orders to CRM", source=source.id, destination=destination.parsed.id
            ),
        )
        assert pipeline.status_code == 201, pipeline.content

        # Run it; the same Idempotency-Key again is the same run, replayed.
        key = str(uuid.uuid4())
        run = api.pipelines_run.sync_detailed(
            id=pipeline.parsed.id, client=client, idempotency_key=key
        )
        assert run.status_code == 202, run.content
        replay = api.pipelines_run.sync_detailed(
            id=pipeline.parsed.id, client=client, idempotency_key=key
        )
        assert replay.status_code == 202
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.parsed.id == run.parsed.id

        finished = wait_until_finished(api, client, run.parsed.id)
        assert finished.state.value == "partially_failed"
        assert (finished.records_delivered, finished.records_failed) == (48, 2)

        failures = api.runs_failures.sync_detailed(id=finished.id, client=client, page_size=1000)
        assert failures.status_code == 200
        assert sorted(f.sequence for f in failures.parsed.results) == sorted(FAILING_IDS)
        assert {f.http_status for f in failures.parsed.results} == {422}

        exported = api.runs_failures_csv.sync_detailed(id=finished.id, client=client)
        assert exported.status_code == 200
        assert exported.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.parsed)))
        assert sorted(int(row["sequence"]) for row in rows) == sorted(FAILING_IDS)

        sink.behave = fail_ids(set())  # the destination accepts them now
        retry = api.runs_retry.sync_detailed(id=finished.id, client=client)
        assert retry.status_code == 202, retry.content
        assert retry.parsed.trigger.value == "retry"
        retried = wait_until_finished(api, client, retry.parsed.id)
        assert retried.state.value == "succeeded"
        assert retried.records_delivered == 2
        delivered = {record["id"] for record in sink.accepted_records()}
        assert delivered == set(range(1, 51))

    # Errors come back as the documented models, never unparsed.
    stranger = api.client.AuthenticatedClient(base_url=live_server.url, token="osm_wrong")
    unauthorized = api.connectors_retrieve.sync_detailed(id=source.id, client=stranger)
    assert unauthorized.status_code == 401
    assert isinstance(unauthorized.parsed, m.ProblemDetails)
    missing = api.connectors_retrieve.sync_detailed(id=uuid.uuid4(), client=client)
    assert missing.status_code == 404
    assert missing.parsed.status == 404
    reused = api.connectors_create.sync_detailed(
        client=client,
        body=m.ConnectorCreateRequest(
            name="Other", direction=m.DirectionEnum.SOURCE, schema=fields
        ),
        idempotency_key=key,  # the run's key, for another request
    )
    assert reused.status_code == 422
    assert "Idempotency-Key" in reused.parsed.detail
    not_a_source = api.connectors_save.sync_detailed(id=destination.parsed.id, client=client)
    assert not_a_source.status_code == 400
    assert not_a_source.parsed.detail
