"""Reads behind the clinical pages: each page's rows come from one query, whatever their number."""

from django.db.models import Count, Max, Prefetch, Q, QuerySet

from imaging.models import Image, Study
from inference.models import Prediction
from inference.selectors import queue_status
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


# --- Dashboards ---------------------------------------------------------------------------------


def worklist_summary() -> dict:
    """Size of the radiologists' worklist, its split by priority, and the study waiting longest."""
    from imaging.models import StudyStatus
    from inference.selectors import studies_worklist

    waiting = Study.objects.filter(status=StudyStatus.AI_DONE)
    by_priority = dict(waiting.order_by().values_list("priority").annotate(n=Count("id")))
    oldest = studies_worklist(statuses=(StudyStatus.AI_DONE,)).order_by("created_at").first()
    return {"size": sum(by_priority.values()), "by_priority": by_priority, "oldest": oldest}


def prediction_queue() -> dict:
    """Queue depth (queued and running AI results) per model version, and failures."""
    from datetime import timedelta

    from django.utils import timezone

    rows = (
        Prediction.objects.filter(status__in=("queued", "running"))
        .order_by()
        .values("model__name", "model__version", "status")
        .annotate(n=Count("id"))
    )
    per_model: dict[str, dict[str, int]] = {}
    for row in rows:
        key = f"{row['model__name']} v{row['model__version']}"
        per_model.setdefault(key, {"queued": 0, "running": 0})[row["status"]] = row["n"]
    since = timezone.now() - timedelta(hours=24)
    failed = Prediction.objects.filter(status="failed")
    status = queue_status()
    return {
        "throughput": status.throughput,
        "throughput_measured": status.measured,
        "expected_wait_seconds": status.expected_wait_seconds,
        "over_limit": status.over_limit,
        "soft_limit": status.soft_limit,
        "queued": sum(v["queued"] for v in per_model.values()),
        "running": sum(v["running"] for v in per_model.values()),
        "per_model": per_model,
        "failed_total": failed.count(),
        "failed_24h": failed.filter(finished_at__gte=since).count(),
        "failed_latest": list(failed.select_related("model", "image__study").order_by("-finished_at")[:5]),
    }


def agreement_per_model() -> list[dict]:
    """How often radiologists agreed with each model version's second opinion."""
    from inference.models import Review

    rows = (
        Review.objects.order_by()
        .values("prediction__model__name", "prediction__model__version")
        .annotate(total=Count("id"), agreed=Count("id", filter=Q(decision="agree")))
        .order_by("prediction__model__name", "prediction__model__version")
    )
    return [
        {
            "model": f"{row['prediction__model__name']} v{row['prediction__model__version']}",
            "total": row["total"],
            "agreed": row["agreed"],
            "rate": row["agreed"] / row["total"] if row["total"] else 0.0,
        }
        for row in rows
    ]
