"""Reads behind the study pages: each page's rows come from one query, whatever their number."""

from django.db.models import QuerySet

from imaging.models import Study
from patients.models import Patient


def patient_studies(*, patient: Patient) -> QuerySet[Study]:
    return patient.studies.with_image_count().order_by("-created_at")


def study_for_page(*, study_id) -> Study:
    return Study.objects.select_related("patient", "created_by").get(id=study_id)
