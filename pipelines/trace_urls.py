"""Record pages, mounted under ``/connectors/`` beside the connectors' own pages."""

from django.urls import path

from pipelines import trace_pages

urlpatterns = [
    path("<uuid:connector_id>/records/", trace_pages.record_search, name="record_search"),
    path(
        "<uuid:connector_id>/records/<int:sequence>/",
        trace_pages.record_detail,
        name="record_detail",
    ),
]
