from django.urls import path

from imaging import views

urlpatterns = [
    path("patients/<uuid:patient_id>/studies/new/", views.study_create_view, name="study-create"),
    path("images/<uuid:image_id>/thumbnail.png", views.image_thumbnail, name="image-thumbnail"),
    path("images/<uuid:image_id>/display.png", views.image_display, name="image-display"),
]
