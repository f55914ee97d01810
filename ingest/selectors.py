"""Reads of the ingest app. Every read takes the organization (``records_count`` takes the
connectors, for the admin, which works across organizations).

A pipeline run covers ``sequence_from < sequence <= sequence_to`` of its source, where
``sequence_to`` is the source's ``last_sequence`` when the run is created (see
``services._store`` for why no record can commit later with a sequence ``<= sequence_to``);
the delivery engine reads those records itself (``pipelines.chunk_reader.run_selection``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet

from connectors.models import Connector, SourceSettings
from ingest.models import Record
from osmos.tenancy.models import Organization


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """Where a source stands on the sample gate."""

    state: str
    sample_count: int
    samples_required: int

    @property
    def samples_missing(self) -> int:
        return max(0, self.samples_required - self.sample_count)


def records_of(
    *,
    organization: Organization,
    connector: Connector,
    after: int | None = None,
    through: int | None = None,
    limit: int | None = None,
) -> QuerySet[Record]:
    """The connector's records by ascending sequence: ``after < sequence <= through``.

    ``after``/``through`` None: unbounded. ``limit``: at most that many (the first ones).
    A connector of another organization gives no records.
    """
    records = Record.objects.for_organization(organization).filter(connector=connector)
    if after is not None:
        records = records.filter(sequence__gt=after)
    if through is not None:
        records = records.filter(sequence__lte=through)
    records = records.order_by("sequence")
    return records[:limit] if limit is not None else records


def record_get(*, organization: Organization, connector: Connector, sequence: int) -> Record | None:
    """The connector's record ``sequence``; None when there is none (or it was purged)."""
    return (
        Record.objects.for_organization(organization)
        .filter(connector=connector, sequence=sequence)
        .first()
    )


def samples_of(*, organization: Organization, connector: Connector) -> QuerySet[Record]:
    """The sample records shown as a preview: the first ``INGEST_SAMPLES_REQUIRED`` received."""
    return records_of(
        organization=organization, connector=connector, limit=settings.INGEST_SAMPLES_REQUIRED
    )


def source_status(*, organization: Organization, connector: Connector) -> SourceStatus | None:
    """The sample-gate state of a source connector; None for a destination or another org's."""
    source = (
        SourceSettings.objects.filter(connector=connector, connector__organization=organization)
        .only("state", "record_count")
        .first()
    )
    if source is None:
        return None
    return SourceStatus(
        state=source.state,
        sample_count=source.record_count,
        samples_required=settings.INGEST_SAMPLES_REQUIRED,
    )


def records_committed_through(*, organization: Organization, connector: Connector) -> int:
    """The highest committed sequence of a source (0 before any record, or for no source).

    Use it as the upper bound of a pipeline run, read once when the run is created.
    """
    last = (
        SourceSettings.objects.filter(connector=connector, connector__organization=organization)
        .values_list("last_sequence", flat=True)
        .first()
    )
    return last or 0


def records_count(*, connector_ids: Iterable[uuid.UUID]) -> int:
    """How many records those connectors hold (for the admin's delete confirmation)."""
    return Record.objects.filter(connector_id__in=list(connector_ids)).count()
