"""The sample gate block of a source's page (the page itself is in ``connectors.views``).

Provided to the connectors app through ``connectors.hooks.source_page``: connectors does not
import ingest (dependencies point down).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from connectors.forms import json_cell
from connectors.models import Connector
from ingest import selectors
from osmos.tenancy.models import Organization


def source_page_context(*, organization: Organization, connector: Connector) -> dict[str, Any]:
    """Template context: the gate's status and percent, and the samples as table rows."""
    status = selectors.source_status(organization=organization, connector=connector)
    samples = list(selectors.samples_of(organization=organization, connector=connector))
    all_columns = [name for name, _type, _nullable in connector.field_specs()]
    # A bounded preview: a 100,000-field schema once made this page take 76 s.
    columns = all_columns[: settings.PREVIEW_MAX_COLUMNS]
    percent = min(100, round(100 * status.sample_count / status.samples_required))
    return {
        "connector": connector,
        "status": status,
        "percent": percent,
        "samples": samples,
        "sample_rows": [[json_cell(record.data.get(c)) for c in columns] for record in samples],
        "columns": columns,
        "hidden_columns": len(all_columns) - len(columns),
        "can_save": status.state != "active" and status.samples_missing == 0,
    }
