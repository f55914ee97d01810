from django.urls import re_path

from ingest import views

app_name = "ingest"

# With or without the trailing slash: CommonMiddleware's APPEND_SLASH cannot redirect a POST.
urlpatterns = [
    re_path(r"^(?P<token>[^/]+)/?$", views.ingest, name="ingest"),
]
