"""Connector pages, mounted at ``/connectors/``."""

from django.urls import path

from connectors import duplicate_views, shaping_views, views

app_name = "connectors"

urlpatterns = [
    path("", views.connector_list, name="list"),
    path("new/", views.connector_new, name="new"),
    path("<str:connector_id>/", views.connector_detail, name="detail"),
    path("<str:connector_id>/progress/", views.source_progress, name="progress"),
    path("<str:connector_id>/save/", views.source_save, name="save"),
    path("<str:connector_id>/rotate/", views.source_rotate, name="rotate"),
    path("<str:connector_id>/edit/", views.connector_edit, name="edit"),
    path("<str:connector_id>/duplicate/", duplicate_views.connector_duplicate, name="duplicate"),
    path("<str:connector_id>/delete/", views.connector_delete, name="delete"),
    path("<str:connector_id>/test/", views.destination_test, name="test"),
    path("<str:connector_id>/preview/", shaping_views.destination_preview, name="preview"),
    path("<str:connector_id>/signing/", views.destination_signing, name="signing"),
    path("<str:connector_id>/verification/", views.source_verification, name="verification"),
    path("<str:connector_id>/health/", views.destination_health, name="health"),
    path("<str:connector_id>/resume/", views.destination_resume_view, name="resume"),
]
