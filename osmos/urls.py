"""URL map. Each app owns its pages (``<app>/urls.py``) and its API routes
(``<app>/api_urls.py``, mounted under ``/api/v1/``)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from osmos import errors
from osmos.observability.metrics import metrics_view
from osmos.tenancy.api import CurrentOrganizationView
from pipelines.admin_trace import find_record

api_v1 = [
    path("", include("connectors.api_urls")),
    path("", include("ingest.api_urls")),
    path("", include("pipelines.api_urls")),
    path("", include("osmos.notifications.api_urls")),
    path("organization/", CurrentOrganizationView.as_view(), name="api-organization"),
    # The schema and its docs page are public: they describe the API, not tenant data.
    path("schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="api-schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="api-schema", permission_classes=[AllowAny]),
        name="api-docs",
    ),
]

urlpatterns = [
    path("admin/find-record/", admin.site.admin_view(find_record), name="admin-find-record"),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("api/v1/", include(api_v1)),
    path("ingest/", include("ingest.urls")),
    path("connectors/", include("ingest.page_urls")),
    path("connectors/", include("pipelines.trace_urls")),
    path("connectors/", include("connectors.urls")),
    path("pipelines/", include("pipelines.urls")),
    path("notifications/", include("osmos.notifications.urls")),
    path("", include("osmos.tenancy.urls")),
]

handler404 = errors.not_found
handler500 = errors.server_error
handler403 = errors.permission_denied
handler400 = errors.bad_request
