"""REST API routes (mounted at /api/v1/), in the ``api`` namespace: ``reverse("api:study-detail", ...)``.

Each app contributes its own api_urls module; every URL an API response carries is one of these.
"""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularRedocView, SpectacularSwaggerView

from api.views import api_not_found
from audit.access import audit_exempt

description = audit_exempt("the API's description, no patient data")

app_name = "api"

urlpatterns: list = [
    path("", include("patients.api_urls")),
    path("", include("imaging.api_urls")),
    path("", include("inference.api_urls")),
    path("", include("audit.api_urls")),
    path("schema/", description(SpectacularJSONAPIView.as_view()), name="schema"),
    path("docs/", description(SpectacularSwaggerView.as_view(url_name="api:schema")), name="docs"),
    path("redoc/", description(SpectacularRedocView.as_view(url_name="api:schema")), name="redoc"),
    # Last: whatever else is asked under /api/v1/ is a JSON 404 (a decoded path may hold a newline).
    re_path(r"^[\s\S]*$", api_not_found),
]
