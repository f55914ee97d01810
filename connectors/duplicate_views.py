"""The duplicate wizard (SPEC §3.4): a copy under a new name, with the original's schema
prefilled and editable in the schema builder of the new-connector form. Duplicating is how a
schema changes; the copy's page then offers to move the original's pipelines to it.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from connectors import services
from connectors.forms import duplicate_draft
from connectors.views import _connector_or_404, _remember_token, show_warnings
from connectors.wizard import posted_draft, wizard_context
from osmos.tenancy.views import organization_required, require_manager


@organization_required
@require_http_methods(["GET", "POST"])
def connector_duplicate(request: HttpRequest, connector_id) -> HttpResponse:
    require_manager(request)
    connector = _connector_or_404(request, connector_id)
    if request.method == "GET":
        draft = duplicate_draft(connector)
    else:
        draft, result = posted_draft(
            request,
            lambda draft: services.connector_duplicate(
                connector=connector, name=draft.name, fields=draft.fields()
            ),
        )
        if result is not None:
            _remember_token(request, result)
            messages.success(request, f"“{result.connector.name}” created as a copy.")
            show_warnings(request, result)
            return redirect("connectors:detail", connector_id=result.connector.pk)
    context = wizard_context(draft)
    context.update(connector=connector, pipelines=services.pipelines_using(connector=connector))
    status = 400 if draft.has_errors else 200
    return render(request, "connectors/duplicate.html", context, status=status)
