"""Reads behind the clinical pages: each page's rows come from one query, whatever their number."""

from django.db.models import Count, Max, Prefetch, Q, QuerySet

from imaging.models import Image, Study
from inference.models import Prediction
from patients.models import Patient


def patient_list(*, search: str = "") -> QuerySet[Patient]:
    return (
        Patient.objects.search(search)
        .annotate(study_count=Count("studies", distinct=True), last_study_at=Max("studies__created_at"))
        # Meta.ordering does not apply to aggregated queries; pagination needs a stable order.
        .order_by("family_name", "given_name", "mrn")
    )


def patient_studies(*, patient: Patient) -> QuerySet[Study]:
    return patient.studies.annotate(
        image_count=Count("images", distinct=True),
    ).order_by("-created_at")


def predictions_for_display() -> QuerySet[Prediction]:
    return Prediction.objects.select_related("model", "review", "review__reviewer").order_by("model__name", "queued_at")


def study_images(*, study: Study) -> list[Image]:
    """Images with their AI results (model, review) in three queries in all."""
    return list(
        study.images.select_related("uploaded_by").prefetch_related(
            Prefetch("predictions", queryset=predictions_for_display())
        )
    )


def study_for_page(*, study_id) -> Study:
    return Study.objects.select_related("patient", "created_by").get(id=study_id)


def images_pending(images: list[Image]) -> bool:
    """Whether any AI result on the page is still queued or running."""
    return any(p.status in ("queued", "running") for image in images for p in image.predictions.all())


def studies_today(*, day) -> QuerySet[Study]:
    return (
        Study.objects.filter(created_at__date=day)
        .select_related("patient")
        .annotate(
            image_count=Count("images", distinct=True),
            failed_count=Count("images__predictions", filter=Q(images__predictions__status="failed"), distinct=True),
        )
        .order_by("priority", "-created_at")
    )
