"""Objects the benchmarks need in the product's database, made through the product's services."""

from __future__ import annotations

import uuid
from typing import Any

from bench import data


def organization(slug: str):
    from osmos.tenancy.models import Organization

    return Organization.objects.create(name=slug, slug=f"{slug}-{uuid.uuid4().hex[:6]}")


def source(org, name: str) -> tuple[Any, str]:
    """A source connector with the benchmark schema, and its ingest token."""
    from connectors.services import connector_create

    created = connector_create(organization=org, name=name, direction="source", fields=data.FIELDS)
    return created.connector, created.ingest_token


def database_url() -> str:
    """The benchmark database as a libpq URL (for plain psycopg baselines)."""
    from bench.stack import bench_env

    return bench_env()["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
