from django.db.models import Count, Q

from imaging.models import Study
from inference.models import AIModel, Prediction, PredictionStatus


def aimodels_for_study(*, study: Study) -> list[AIModel]:
    """Active models that read this study's modality, body part and clinical question."""
    # Modalities are a JSON list; the few candidates of one body part are filtered here
    # rather than with JSON lookups that SQLite lacks.
    candidates = AIModel.objects.active().filter(body_part=study.body_part).order_by("name", "-created_at")
    chosen: dict[str, AIModel] = {}
    for model in candidates:
        if model.name not in chosen and model.applies_to(
            modality=study.modality, body_part=study.body_part, procedure=study.procedure
        ):
            chosen[model.name] = model
    return list(chosen.values())


def prediction_status_counts(*, study_id) -> dict[str, int]:
    rows = Prediction.objects.filter(image__study_id=study_id).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def study_unreviewed_succeeded_count(*, study_id) -> int:
    return Prediction.objects.filter(
        Q(image__study_id=study_id), Q(status=PredictionStatus.SUCCEEDED), Q(review__isnull=True)
    ).count()
