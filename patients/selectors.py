"""Reads behind the patient pages."""

from django.db.models import Count, Max, QuerySet

from patients.models import NAME_ORDER, Patient


def patient_list(*, search: str = "") -> QuerySet[Patient]:
    """Matching patients in name order (see ``PatientQuerySet.search``); page them, then add their study summaries."""
    return Patient.objects.search(search) if search.strip() else Patient.objects.order_by(*NAME_ORDER)


def patients_with_study_summary(*, patients: list[Patient]) -> list[Patient]:
    """Sets ``study_count`` and ``last_study_at`` on the patients of one page, in one query.

    Run after paging: as subqueries of the paged query they would run for every row an OFFSET
    skips too (page 500 costs 12,500 of them), and as a join they group every study first.
    """
    # Studies belong to imaging, which depends on patients; reached through the relation, not an import.
    studies = Patient.studies.rel.related_model.objects.filter(patient__in=[p.pk for p in patients])
    summary = {
        row["patient"]: row
        for row in studies.order_by().values("patient").annotate(n=Count("pk"), last=Max("created_at"))
    }
    for patient in patients:
        row = summary.get(patient.pk)
        patient.study_count = row["n"] if row else 0
        patient.last_study_at = row["last"] if row else None
    return patients
