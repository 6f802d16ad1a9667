"""REST API routes (mounted at /api/v1/). Each app contributes its own api_urls module."""

from django.urls import include, path

urlpatterns: list = [
    path("", include("patients.api_urls")),
    path("", include("imaging.api_urls")),
    path("", include("inference.api_urls")),
    path("", include("medportal.api.api_urls")),
]
