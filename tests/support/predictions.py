"""Putting predictions into states a test needs without running a model."""

from imaging.models import Study
from inference.models import Prediction, PredictionStatus, Review
from inference.study_status import AI_FLAG_CONFIDENCE


def succeed(prediction: Prediction, label: str = "pneumonia", confidence: float = 0.8) -> Prediction:
    """Mark ``prediction`` succeeded with ``label`` at ``confidence``; the rest of the mass spread evenly."""
    labels = prediction.model.labels
    probabilities = {lab: (confidence if lab == label else (1 - confidence) / (len(labels) - 1)) for lab in labels}
    Prediction.objects.filter(id=prediction.id).update(
        status=PredictionStatus.SUCCEEDED, label=label, confidence=confidence, probabilities=probabilities
    )
    prediction.refresh_from_db()
    return prediction


def study_ai_flags_recomputed() -> dict:
    """Each study's (top unreviewed abnormal confidence, AI flag) from its results and reviews alone,
    worked out here without the code that keeps them on the study."""
    reviewed = set(Review.objects.values_list("prediction_id", flat=True))
    tops: dict = {}
    for prediction in Prediction.objects.select_related("image"):
        if prediction.status == PredictionStatus.SUCCEEDED and prediction.is_abnormal and prediction.id not in reviewed:
            study_id = prediction.image.study_id
            tops[study_id] = max(tops.get(study_id, prediction.confidence), prediction.confidence)
    return {
        study_id: (tops.get(study_id), study_id in tops and tops[study_id] >= AI_FLAG_CONFIDENCE)
        for study_id in Study.objects.values_list("id", flat=True)
    }


def study_ai_flags_stored() -> dict:
    """Each study's (top confidence, AI flag) as stored on the study."""
    return {row[0]: (row[1], row[2]) for row in Study.objects.values_list("id", "ai_top_confidence", "ai_flagged")}
