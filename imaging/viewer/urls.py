from django.urls import path

from imaging.viewer import views

urlpatterns = [
    path("viewer/", views.viewer_page, name="viewer"),
    path("viewer/app-config.js", views.viewer_config, name="viewer-config"),
    path("viewer/<path:route>", views.viewer_page, name="viewer-route"),
]
