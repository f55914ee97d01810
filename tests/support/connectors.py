"""Destination settings the connector tests check field by field."""

from __future__ import annotations

SECRET = "Bearer s3cret-value-9f3a"
DESTINATION = {
    "url": "http://127.0.0.1:8824/v2/notify",
    "method": "PUT",
    "headers": [{"name": "Authorization", "value": SECRET}, {"name": "X-Team", "value": "crm"}],
    "write_mode": "batch",
    "batch_size": 1000,
    "split_failed_batches": True,
    "timeout_seconds": 12,
}
