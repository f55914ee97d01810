"""Pages of ingest, mounted under ``/connectors/`` beside the connectors' own pages."""

from django.urls import path

from ingest import pages

urlpatterns = [
    path("<uuid:connector_id>/rejections/", pages.source_rejections, name="source_rejections"),
]
