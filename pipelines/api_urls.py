"""API routes of pipelines under ``/api/v1/``: pipelines, runs, and connectors' ``test/``."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from pipelines.api import PipelineViewSet, RunViewSet
from pipelines.failures_api import RunFailuresCsvViewSet
from pipelines.inspector_api import RunRequestsViewSet
from pipelines.probe_api import DestinationTestViewSet
from pipelines.trace_api import RecordTraceViewSet

# Path converters: ids are UUIDs, so anything else is a plain 404 before any view runs.
router = SimpleRouter(use_regex_path=False)
router.register("pipelines", PipelineViewSet, basename="pipeline")
router.register("runs", RunViewSet, basename="run")

urlpatterns = [
    *router.urls,
    path(
        "runs/<uuid:pk>/failures/csv/",
        RunFailuresCsvViewSet.as_view({"get": "failures_csv"}),
        name="run-failures-csv",
    ),
    path(
        "runs/<uuid:pk>/requests/",
        RunRequestsViewSet.as_view({"get": "list"}),
        name="run-requests",
    ),
    path(
        "connectors/<uuid:pk>/test/",
        DestinationTestViewSet.as_view({"post": "test"}),
        name="connector-test",
    ),
    path(
        "connectors/<uuid:pk>/records/<int:sequence>/",
        RecordTraceViewSet.as_view({"get": "trace"}),
        name="connector-record-trace",
    ),
]
