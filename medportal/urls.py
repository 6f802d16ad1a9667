from django.contrib import admin
from django.urls import include, path

# The admin is part of MedPortal for its administrators, not a separate "Django" product.
admin.site.site_header = "MedPortal administration"
admin.site.site_title = "MedPortal admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    path("dicomweb/", include("imaging.dicomweb.urls")),
    path("", include("web.urls")),
]
