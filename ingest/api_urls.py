"""API routes of ingest under ``/api/v1/``: extra actions on connectors owned by this app."""

from django.urls import path

from ingest.api import SourceRecordsViewSet
from ingest.rejections_api import SourceRejectionsViewSet

urlpatterns = [
    path(
        "connectors/<uuid:pk>/records/",
        SourceRecordsViewSet.as_view({"get": "records"}),
        name="connector-records",
    ),
    path(
        "connectors/<uuid:pk>/save/",
        SourceRecordsViewSet.as_view({"post": "save"}),
        name="connector-save",
    ),
    path(
        "connectors/<uuid:pk>/rejections/",
        SourceRejectionsViewSet.as_view({"get": "rejections"}),
        name="connector-rejections",
    ),
]
