from django.urls import path

from patients import views

urlpatterns = [
    path("patients/", views.patient_list, name="patient-list"),
    path("patients/new/", views.patient_create_view, name="patient-create"),
    path("patients/<uuid:patient_id>/", views.patient_detail, name="patient-detail"),
    path("patients/<uuid:patient_id>/edit/", views.patient_edit, name="patient-edit"),
]
