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


# Confidence at or above which an unreviewed abnormal AI result moves a study up the worklist.
WORKLIST_FLAG_CONFIDENCE = 0.8


def studies_worklist(*, statuses=None, flag_confidence: float | None = None):
    """Studies awaiting a radiologist, in triage order; the pages and the API share it.

    Order: priority (STAT first), then studies with an unreviewed AI result flagged abnormal at or
    above ``flag_confidence``, then the oldest first. Each study carries ``ai_flagged``,
    ``ai_top_confidence`` (highest unreviewed abnormal confidence) and ``image_count``; one query.
    """
    from django.db.models import Exists, F, Max, OuterRef, Subquery

    from imaging.models import StudyStatus

    threshold = WORKLIST_FLAG_CONFIDENCE if flag_confidence is None else flag_confidence
    statuses = statuses or (StudyStatus.RECEIVED, StudyStatus.AI_PENDING, StudyStatus.AI_DONE)
    abnormal = Prediction.objects.filter(
        image__study=OuterRef("pk"),
        status=PredictionStatus.SUCCEEDED,
        is_abnormal=True,
        review__isnull=True,
    )
    top_confidence = abnormal.order_by().values("image__study").annotate(top=Max("confidence")).values("top")[:1]
    return (
        Study.objects.filter(status__in=statuses)
        .select_related("patient")
        .annotate(
            ai_flagged=Exists(abnormal.filter(confidence__gte=threshold)),
            ai_top_confidence=Subquery(top_confidence),
            image_count=Count("images", distinct=True),
        )
        .order_by("priority", F("ai_flagged").desc(), "created_at", "id")
    )
