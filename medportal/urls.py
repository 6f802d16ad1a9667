from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    path("dicomweb/", include("imaging.dicomweb.urls")),
    path("", include("imaging.dicom.urls")),
    # Server-rendered pages: each app contributes its own urls module.
    path("", include("accounts.urls")),
    path("", include("web.urls")),
    path("", include("patients.urls")),
    path("", include("imaging.urls")),
    path("", include("inference.urls")),
]
