"""The worker gives no label to an image unlike the model's training images (in-process runtime)."""

import io
import json
import shutil

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from PIL import Image as PILImage

from imaging.intake import image_upload
from inference import runtime
from inference.ml import ood
from inference.ml.preprocessing import to_model_batch
from inference.ml.serving import load_model
from inference.models import PredictionStatus
from inference.services import aimodel_register
from tests.conftest import tiny_card
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _chest_like(rng, n):
    """Smooth, film-like grayscale images: what this test's model was "trained" on."""
    yy, xx = np.mgrid[:32, :32]
    images = []
    for _ in range(n):
        field = 110 + 50 * np.sin(xx / rng.uniform(4, 8) + rng.uniform(0, 3)) * np.cos(yy / rng.uniform(5, 9))
        images.append(np.clip(field + rng.normal(0, 2, field.shape), 0, 255).astype(np.uint8))
    return images


@pytest.fixture
def checked_model(tmp_path, tiny_model_file):
    """The tiny chest model registered with an input check fitted on chest-like images."""
    rng = np.random.default_rng(0)
    keras_model = load_model(tiny_model_file)
    twin = ood.feature_model(keras_model)
    train = to_model_batch(_chest_like(rng, 120), input_size=(16, 16), color_mode="grayscale")
    val = to_model_batch(_chest_like(rng, 60), input_size=(16, 16), color_mode="grayscale")
    _, train_features = ood.features_and_proba(twin, train)
    _, val_features = ood.features_and_proba(twin, val)
    check = ood.fit_check(
        train_features,
        np.arange(len(train)) % 2,
        val_features,
        val,
        train_batch=train,
        train_colourfulness=[0.0] * len(train),  # grey films
        val_colourfulness=[0.0] * len(val),
    )
    weights = tmp_path / "model.keras"
    shutil.copy(tiny_model_file, weights)
    sha = check.save(tmp_path / "ood.npz")
    card = tiny_card(name="tiny-checked", input_check={"file": "ood.npz", "sha256": sha, "image_kind": "chest X-ray"})
    return aimodel_register(weights_path=weights, card=json.loads(json.dumps(card)))


def test_an_image_unlike_the_training_images_gets_no_label(checked_model):
    rng = np.random.default_rng(1)
    study = StudyFactory()
    film = image_upload(study=study, data=_png(_chest_like(rng, 1)[0])).image.predictions.get()
    noise = image_upload(study=study, data=_png(rng.integers(0, 256, (48, 48), dtype=np.uint8))).image
    noise = noise.predictions.get()
    assert {film.model_id, noise.model_id} == {checked_model.id}

    assert runtime.run_batch(prediction_id=film.id) == 2

    film.refresh_from_db()
    noise.refresh_from_db()
    assert film.status == PredictionStatus.SUCCEEDED and film.label in ("normal", "pneumonia")
    assert noise.status == PredictionStatus.FAILED
    assert noise.label == "" and noise.probabilities is None and noise.confidence is None
    assert noise.error.startswith(
        "Not run: this image does not look like the chest X-ray images this model was trained on"
    )


def test_a_tinted_copy_of_a_film_gets_no_label_and_is_told_why(checked_model):
    rng = np.random.default_rng(2)
    film = _chest_like(rng, 1)[0]
    tinted = np.dstack([film, film, np.clip(film.astype(int) + 60, 0, 255).astype(np.uint8)])
    study = StudyFactory()
    grey = image_upload(study=study, data=_png(film)).image.predictions.get()
    colour = image_upload(study=study, data=_png(tinted)).image.predictions.get()

    assert runtime.run_batch(prediction_id=grey.id) == 2

    grey.refresh_from_db()
    colour.refresh_from_db()
    assert grey.status == PredictionStatus.SUCCEEDED
    assert colour.status == PredictionStatus.FAILED and colour.label == ""
    assert colour.error == (
        "Not run: this image is in colour; the chest X-ray images this model was trained on are greyscale, "
        "so no label was given."
    )


def test_a_card_naming_a_missing_check_is_refused_at_registration(tmp_path, tiny_model_file):
    shutil.copy(tiny_model_file, tmp_path / "model.keras")
    card = tiny_card(name="tiny-unchecked", input_check={"file": "ood.npz", "sha256": "0" * 64})
    with pytest.raises(ValidationError, match="input check"):
        aimodel_register(weights_path=tmp_path / "model.keras", card=card)
