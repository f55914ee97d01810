"""URL map. Each app owns its pages (``<app>/urls.py``) and its API routes
(``<app>/api_urls.py``, mounted under ``/api/v1/``)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny

from osmos import error_pages
from osmos.api_docs import SwaggerDocsView
from osmos.observability.metrics import metrics_view
from osmos.tenancy import signin
from pipelines.admin_trace import find_record
from pipelines.home import home

api_v1 = [
    path("", include("connectors.api_urls")),
    path("", include("ingest.api_urls")),
    path("", include("pipelines.api_urls")),
    path("", include("osmos.notifications.api_urls")),
    path("", include("osmos.tenancy.api_urls")),
    # The schema and its docs page are public: they describe the API, not tenant data.
    path("schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="api-schema"),
    path("docs/", SwaggerDocsView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    # The admin's sign-in answers 429 while throttled, like /login/ (osmos/tenancy/signin.py).
    path("admin/login/", signin.guard(admin.site.login)),
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
    path("", home, name="home"),
    path("", include("osmos.tenancy.urls")),
]

handler404 = error_pages.not_found
handler500 = error_pages.server_error
handler403 = error_pages.permission_denied
handler400 = error_pages.bad_request
