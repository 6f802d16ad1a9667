from django.urls import path

from patients import apis

urlpatterns = [
    path("patients/", apis.PatientListApi.as_view(), name="patient-list"),
    path("patients/<uuid:patient_id>/", apis.PatientDetailApi.as_view(), name="patient-detail"),
]
