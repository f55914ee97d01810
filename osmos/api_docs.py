"""The API's documentation page, served entirely by the product (SPEC §6: works offline).

Swagger UI comes from ``drf-spectacular-sidecar``'s static files, never a CDN. The page runs
under the site's Content-Security-Policy: Swagger UI's start script is a separate same-origin
file (``SpectacularSwaggerSplitView``), and our template holds no inline script and no inline
``<style>``. (Redoc is not offered: it loads its logo from its vendor's CDN.)
"""

from __future__ import annotations

from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny


class SwaggerDocsView(SpectacularSwaggerSplitView):
    permission_classes = [AllowAny]
    template_name = "api_docs/swagger_ui.html"
