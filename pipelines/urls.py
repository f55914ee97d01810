"""Pipeline and run pages, mounted at ``/pipelines/``."""

from django.urls import path

from pipelines import move, views

app_name = "pipelines"

urlpatterns = [
    path("", views.pipeline_list, name="list"),
    path("new/", views.pipeline_new, name="new"),
    path("builder-preview/", views.builder_preview, name="builder_preview"),
    path("move-to/<str:connector_id>/", move.move_pipelines, name="move"),
    path("runs/<str:run_id>/", views.run_detail, name="run"),
    path("runs/<str:run_id>/status/", views.run_status, name="run_status"),
    path("runs/<str:run_id>/retry/", views.run_retry, name="run_retry"),
    path("runs/<str:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("<str:pipeline_id>/", views.pipeline_detail, name="detail"),
    path("<str:pipeline_id>/edit/", views.pipeline_edit, name="edit"),
    path("<str:pipeline_id>/run/", views.pipeline_run, name="run_now"),
    path("<str:pipeline_id>/delete/", views.pipeline_delete, name="delete"),
]
