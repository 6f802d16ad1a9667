"""Images made on the fly and AI results in every state, for the API tests."""

from django.utils import timezone

from imaging.models import Image
from imaging.storage import content_name, sha256_hex
from inference.models import AIModel, Prediction, PredictionStatus
from inference.study_status import studies_refresh_ai_flag
from tests.factories import StudyFactory
from tests.support.images import png_bytes


def make_aimodel(**overrides) -> AIModel:
    """An AI model row (its weights are never loaded by the API)."""
    fields = {
        "name": "cxr-test",
        "version": "1.0.0",
        "display_name": "Chest X-ray test model",
        "modalities": ["CR", "DX"],
        "body_part": "CHEST",
        "labels": ["normal", "pneumonia"],
        "normal_labels": ["normal"],
        "input_height": 32,
        "input_width": 32,
        "color_mode": "grayscale",
        "weights": "models/test.keras",
        "weights_sha256": "0" * 64,
    }
    fields.update(overrides)
    return AIModel.objects.create(**fields)


def make_image(study=None, *, color: int = 1) -> Image:
    study = study or StudyFactory()
    data = png_bytes(color=color)
    sha = sha256_hex(data + str(study.id).encode())
    return Image.objects.create(
        study=study,
        file=content_name("images", sha, ".png"),
        sha256=sha,
        size_bytes=len(data),
        content_type="image/png",
        width=16,
        height=16,
    )


def make_prediction(image=None, model=None, *, status=PredictionStatus.SUCCEEDED, label="pneumonia") -> Prediction:
    image = image or make_image()
    model = model or AIModel.objects.filter(name="cxr-test").first() or make_aimodel()
    fields = {"image": image, "model": model, "study_modality": image.study.modality, "status": status}
    if status == PredictionStatus.SUCCEEDED:
        fields.update(
            label=label,
            confidence=0.91,
            probabilities={"normal": 0.09, "pneumonia": 0.91},
            is_abnormal=label != "normal",
            finished_at=timezone.now(),
        )
    elif status == PredictionStatus.FAILED:
        fields.update(error="The image could not be read.", finished_at=timezone.now())
    prediction = Prediction.objects.create(**fields)
    # What the services keep on the study as they write a result.
    studies_refresh_ai_flag(study_ids=[image.study_id])
    return prediction
