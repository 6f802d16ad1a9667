"""REST API routes (mounted at /api/v1/). Each app contributes its own api_urls module."""

from django.urls import include, path, re_path

from medportal.api.views import api_not_found

urlpatterns: list = [
    path("", include("patients.api_urls")),
    path("", include("imaging.api_urls")),
    path("", include("inference.api_urls")),
    path("", include("audit.api_urls")),
    path("", include("medportal.api.api_urls")),
    # Last: whatever else is asked under /api/v1/ is a JSON 404.
    re_path(r"^.*$", api_not_found),
]
