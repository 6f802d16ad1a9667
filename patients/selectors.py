"""Reads behind the patient pages."""

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from patients.models import Patient


def patient_list(*, search: str = "") -> QuerySet[Patient]:
    """Matching patients in name order, each with ``study_count`` and ``last_study_at``.

    Both are subqueries run for the rows of the page only; a join of every study grouped
    before the LIMIT costs the whole history on every page.
    """
    # Studies belong to imaging, which depends on patients; reached through the relation, not an import.
    studies = Patient.studies.rel.related_model.objects.filter(patient=OuterRef("pk")).order_by()
    return (
        Patient.objects.search(search)
        .annotate(
            study_count=Coalesce(Subquery(studies.values("patient").annotate(n=Count("pk")).values("n")), 0),
            last_study_at=Subquery(studies.order_by("-created_at").values("created_at")[:1]),
        )
        .order_by("family_name", "given_name", "mrn")
    )
