from django.urls import path

from imaging.dicom import views

urlpatterns = [
    path("images/<uuid:image_id>/render.png", views.ImageRenderApi.as_view(), name="image-render"),
    path("images/<uuid:image_id>/instance.dcm", views.InstanceFileApi.as_view(), name="instance-file"),
    path("studies/<uuid:study_id>/export.zip", views.StudyExportApi.as_view(), name="study-export"),
]
