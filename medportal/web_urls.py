"""Server-rendered pages. Each app contributes its own urls module."""

from django.urls import include, path

urlpatterns: list = [
    path("", include("accounts.urls")),
    path("", include("dashboard.urls")),
    path("", include("patients.urls")),
    path("", include("imaging.urls")),
    path("", include("inference.urls")),
]
