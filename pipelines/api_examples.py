"""Examples of the pipelines API's answers, for the OpenAPI schema (``pipelines.api``)."""

PIPELINE_EXAMPLE = {
    "id": "6f1c2b1e-3f0a-4d0e-9a47-1f4f8a0e5b21",
    "name": "Orders to CRM",
    "source": "0b6e1b7e-1d7b-4f63-8d3e-9f1a2b3c4d5e",
    "destination": "8c2d4e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
    "mapping": {"id": "id", "email": "email", "total": "amount"},
    "schedule": {"cron": "0 7 * * *", "timezone": "Europe/Paris"},
    "sync_mode": "incremental",
    "enabled": True,
    "next_run_at": "2025-03-02T06:00:00Z",
    "created_at": "2025-03-01T09:30:00Z",
    "updated_at": "2025-03-01T09:30:00Z",
}
RUN_EXAMPLE = {
    "id": "2a4b6c8d-0e1f-4a3b-9c5d-7e9f1a3b5c7d",
    "pipeline": PIPELINE_EXAMPLE["id"],
    "trigger": "api",
    "state": "partially_failed",
    "records_total": 1000,
    "records_delivered": 998,
    "records_failed": 2,
    "requests_made": 21,
    "created_at": "2025-03-01T10:00:00Z",
    "started_at": "2025-03-01T10:00:01Z",
    "finished_at": "2025-03-01T10:00:04Z",
    "waiting_until": None,
    "last_error": "",
}
FAILURE_EXAMPLE = {
    "sequence": 42,
    "record": {"id": 42, "email": "not-an-email", "total": 12.5},
    "reason": "The destination answered 422 Unprocessable Entity.",
    "http_status": 422,
    "response_excerpt": '{"error": "email is invalid"}',
}
