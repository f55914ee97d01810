"""The product's URL map plus ``/bench/echo/``: the database-free baseline view."""

from __future__ import annotations

import orjson
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from osmos import urls as product_urls


@csrf_exempt
def echo(request: HttpRequest) -> HttpResponse:
    """Parse the JSON body and answer how many records it held: ingest without the database.

    Like the ingest endpoint it is CSRF-exempt, reads and parses the body and answers JSON, so
    the difference between the two is what ingest adds (token lookup, validation, storage).
    """
    if request.method != "POST":
        return JsonResponse({"detail": "POST only"}, status=405)
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return JsonResponse({"detail": "malformed JSON"}, status=400)
    accepted = len(body) if isinstance(body, list) else 1
    return JsonResponse({"accepted": accepted})


urlpatterns = [path("bench/echo/", echo), *product_urls.urlpatterns]
handler404 = product_urls.handler404
handler500 = product_urls.handler500
handler403 = product_urls.handler403
handler400 = product_urls.handler400
