"""Reads behind the patient pages."""

from django.db.models import Count, Max, QuerySet

from patients.models import Patient


def patient_list(*, search: str = "") -> QuerySet[Patient]:
    return (
        Patient.objects.search(search)
        .annotate(study_count=Count("studies", distinct=True), last_study_at=Max("studies__created_at"))
        # Meta.ordering does not apply to aggregated queries; pagination needs a stable order.
        .order_by("family_name", "given_name", "mrn")
    )
