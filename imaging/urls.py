from django.urls import path

from imaging import views

urlpatterns = [
    path("patients/<uuid:patient_id>/studies/new/", views.study_create_view, name="study-create"),
    path("dicom/import/", views.dicom_import, name="dicom-import"),
    path("studies/<uuid:study_id>/", views.study_detail, name="study-detail"),
    path("studies/<uuid:study_id>/results/", views.study_results, name="study-results"),
    path("studies/<uuid:study_id>/upload/", views.study_upload, name="study-upload"),
    path("images/<uuid:image_id>/thumbnail.png", views.image_thumbnail, name="image-thumbnail"),
    path("images/<uuid:image_id>/display.png", views.image_display, name="image-display"),
]
