from django.urls import path

from imaging.dicom import views

urlpatterns = [
    path("images/<uuid:image_id>/render.png", views.ImageRenderApi.as_view(), name="image-render"),
    path("predictions/<uuid:prediction_id>/report.dcm", views.PredictionReportApi.as_view(), name="prediction-report"),
    path("studies/<uuid:study_id>/export.zip", views.StudyExportApi.as_view(), name="study-export"),
]
