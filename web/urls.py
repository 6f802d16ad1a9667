"""Server-rendered pages, in the ``pages`` namespace; each app contributes its own urls module.

The REST API's routes are in the ``api`` namespace (api/urls.py), so ``reverse()`` never hands a
machine client a page that answers it with the login form.
"""

from django.urls import include, path

from web import views

app_name = "pages"

urlpatterns = [
    path("", views.home, name="home"),
    path("", include("accounts.urls")),
    path("", include("patients.urls")),
    path("", include("imaging.urls")),
    path("", include("imaging.dicom.urls")),
    path("", include("imaging.viewer.urls")),
    path("", include("inference.urls")),
]
