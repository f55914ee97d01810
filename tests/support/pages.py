"""The connectors the page tests start from (orders in, a CRM out), built by the factories."""

from __future__ import annotations

from connectors.models import Connector
from tests.support import factories, schemas


def records(count: int, start: int = 1) -> list[dict]:
    return schemas.order_records(count, start=start)


def make_source(organization, *, name: str = "Orders", count: int = 0, save: bool = False):
    """A source of required-amount orders holding records 1..count; ``save``: active."""
    return factories.make_source(
        organization, name=name, schema=schemas.ORDERS_STRICT, records=records(count), save=save
    )


def make_destination(
    organization, *, name: str = "CRM", url: str = factories.LOOPBACK_HOOK
) -> Connector:
    return factories.make_destination(
        organization,
        name=name,
        url=url,
        headers=[{"name": "Authorization", "value": "Bearer abcdef123456"}],
    )


ingest = factories.ingest
