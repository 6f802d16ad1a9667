"""Helpers for the page tests: signed-in clients and AI results in every state."""

import io

import pytest
from django.test import Client
from django.utils import timezone
from PIL import Image as PILImage

from imaging.models import Image
from imaging.storage import blob_store, content_name, sha256_hex
from inference.models import AIModel, Prediction, PredictionStatus
from inference.study_status import studies_refresh_ai_flag
from tests.factories import PatientFactory, StudyFactory, UserFactory


@pytest.fixture
def client_for():
    """A Django test client signed in as the given user."""

    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def staff_client(client_for, staff_user) -> Client:
    return client_for(staff_user)


@pytest.fixture
def radiologist_client(client_for, radiologist_user) -> Client:
    return client_for(radiologist_user)


@pytest.fixture
def roleless_user(db):
    return UserFactory(username="nobody")


def make_aimodel(**overrides) -> AIModel:
    """An AI model row for display tests (its weights are never loaded by the pages)."""
    fields = {
        "name": "cxr-pneumonia",
        "version": "1.2.0",
        "display_name": "Chest X-ray pneumonia",
        "modalities": ["CR", "DX"],
        "body_part": "CHEST",
        "labels": ["normal", "pneumonia"],
        "normal_labels": ["normal"],
        "input_height": 28,
        "input_width": 28,
        "color_mode": "grayscale",
        "weights": "models/none.keras",
        "weights_sha256": "0" * 64,
        "card": {
            "dataset": "PneumoniaMNIST v2",
            "metrics": {"validation": {"accuracy": 0.912}},
            "intended_use": "Second opinion on paediatric chest X-rays.",
            "limitations": "Trained on 28×28 images.",
        },
    }
    fields.update(overrides)
    return AIModel.objects.create(**fields)


def make_image(study, *, name: str = "image.png", sha: str | None = None, data: bytes | None = None):
    """An Image row whose file really exists in storage (tiny PNG unless ``data`` is given)."""
    if data is None:
        buffer = io.BytesIO()
        PILImage.new("L", (16, 12), color=(hash(name) % 200) + 20).save(buffer, format="PNG")
        data = buffer.getvalue()
    sha = sha or sha256_hex(data + name.encode())
    blob = blob_store(data=data, name=content_name("images", sha, ".png"))
    return Image.objects.create(
        study=study,
        file=blob.name,
        sha256=sha,
        size_bytes=len(data),
        content_type="image/png",
        width=16,
        height=12,
        original_filename=name,
    )


def make_prediction(image, model, *, status=PredictionStatus.SUCCEEDED, label="pneumonia", confidence=0.87, **extra):
    fields: dict = {"image": image, "model": model, "study_modality": image.study.modality, "status": status}
    if status == PredictionStatus.SUCCEEDED:
        others = [lab for lab in model.labels if lab != label]
        rest = (1.0 - confidence) / max(len(others), 1)
        fields.update(
            label=label,
            confidence=confidence,
            probabilities={label: confidence, **dict.fromkeys(others, rest)},
            is_abnormal=None if model.normal_labels is None else label not in model.normal_labels,
            finished_at=timezone.now(),
        )
    elif status == PredictionStatus.FAILED:
        fields.update(error=extra.pop("error", "The weights could not be loaded."), finished_at=timezone.now())
    fields.update(extra)
    prediction = Prediction.objects.create(**fields)
    # What the services keep on the study as they write a result.
    studies_refresh_ai_flag(study_ids=[image.study_id])
    return prediction


@pytest.fixture
def study(db):
    return StudyFactory(patient=PatientFactory(family_name="Okafor", given_name="Ada", mrn="MRN-0042"))
