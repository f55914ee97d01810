"""The connector wizard's steps shared by its pages (new, edit, duplicate): the template's
choices, the "add a row" buttons, and a posted draft saved or given back with its errors.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest

from connectors import services
from connectors.forms import (
    DIRECTION_CHOICES,
    DIRECTION_HELP,
    FIELD_TYPES,
    METHODS,
    SYSTEM_CHOICES,
    WRITE_MODES,
    ConnectorDraft,
    HeaderRow,
    SchemaRow,
)
from osmos.errors import InvalidInput


def wizard_context(draft: ConnectorDraft) -> dict:
    """What the wizard's template needs beside the draft: the choices of its inputs."""
    return {
        "draft": draft,
        "systems": SYSTEM_CHOICES,
        "directions": [(value, label, DIRECTION_HELP[value]) for value, label in DIRECTION_CHOICES],
        "field_types": FIELD_TYPES,
        "methods": METHODS,
        "write_modes": WRITE_MODES,
    }


def posted_draft(
    request: HttpRequest, save: Callable[[ConnectorDraft], services.ConnectorWithToken]
) -> tuple[ConnectorDraft, services.ConnectorWithToken | None]:
    """The wizard as posted, and what ``save`` returned for it: None when the post only added
    a row or ``save`` refused it (the refusals are then on the draft)."""
    draft = ConnectorDraft.from_post(request.POST)
    if added_a_row(request, draft):
        return draft, None
    try:
        return draft, save(draft)
    except InvalidInput as error:
        draft.attach_errors(error.errors)
        return draft, None


def added_a_row(request: HttpRequest, draft: ConnectorDraft) -> bool:
    """The "add a row" buttons of the page without JavaScript: one more blank row, no save."""
    if "add_field" in request.POST:
        draft.schema.append(SchemaRow(key=f"f{len(draft.schema)}"))
        return True
    if "add_header" in request.POST:
        draft.headers.append(HeaderRow())
        return True
    return False
