from django.urls import path

from imaging.dicom import views

urlpatterns = [
    path("images/<uuid:image_id>/render.png", views.ImageRenderApi.as_view(), name="image-render"),
    path("studies/<uuid:study_id>/export.zip", views.StudyExportApi.as_view(), name="study-export"),
]
