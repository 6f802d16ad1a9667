"""Putting predictions into states a test needs without running a model."""

from inference.models import Prediction, PredictionStatus


def succeed(prediction: Prediction, label: str = "pneumonia", confidence: float = 0.8) -> Prediction:
    """Mark ``prediction`` succeeded with ``label`` at ``confidence``; the rest of the mass spread evenly."""
    labels = prediction.model.labels
    probabilities = {lab: (confidence if lab == label else (1 - confidence) / (len(labels) - 1)) for lab in labels}
    Prediction.objects.filter(id=prediction.id).update(
        status=PredictionStatus.SUCCEEDED, label=label, confidence=confidence, probabilities=probabilities
    )
    prediction.refresh_from_db()
    return prediction
