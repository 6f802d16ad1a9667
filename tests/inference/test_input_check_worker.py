"""The worker gives no label to an image unlike the model's training images (in-process runtime),
with the tiny test model and with every shipped model."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from PIL import Image as PILImage

from imaging.intake import image_upload
from inference import runtime
from inference.ml import ood
from inference.ml.datasets import read_image
from inference.ml.preprocessing import to_model_batch
from inference.ml.serving import load_model
from inference.models import PredictionStatus
from inference.services import aimodel_register, shipped_model_dirs
from tests.conftest import SAMPLES, require_datasets, tiny_card
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


# The shipped models, each with a study routed to it and an image of its own kind: a sample, or for
# the models made for larger images than the samples, a validation image of their data set.
ROUTES = {
    "cxr-covid19": {"modality": "DX", "body_part": "CHEST"},
    "cxr-pneumonia": {"modality": "DX", "body_part": "CHEST"},
    "derm-melanoma": {"modality": "DMS", "body_part": "SKIN"},
    "fundus-dr-grade": {"modality": "OP", "body_part": "EYE"},
    "mri-brain-tumour": {"modality": "MR", "body_part": "BRAIN"},
    "smear-cell-type": {"modality": "SM", "body_part": "BLOOD", "procedure": "WBC_DIFFERENTIAL"},
    "smear-malaria": {"modality": "SM", "body_part": "BLOOD", "procedure": "MALARIA_SCREEN"},
    "us-breast": {"modality": "US", "body_part": "BREAST"},
}
OWN_IMAGES = [
    ("cxr-covid19", "covid19_radiography_cxr/val/Normal/Normal-10078.jpg"),
    ("cxr-pneumonia", "samples/cxr-normal-1.png"),
    ("derm-melanoma", "samples/derm-mel-1.jpg"),
    ("derm-melanoma", "samples/derm-nv-1.jpg"),  # the most colourful sample
    ("fundus-dr-grade", "samples/fundus-grade0-1.png"),
    ("mri-brain-tumour", "brain_tumor_mri/Training/no_tumor/1.jpg"),
    ("smear-cell-type", "samples/smear-lymphocyte-1.jpg"),
    ("smear-malaria", "samples/malaria-parasitized-1.png"),
    ("us-breast", "samples/us-breast-benign-1.png"),
]


def _own_image(relative: str) -> bytes:
    if relative.startswith("samples/"):
        return (SAMPLES / relative.removeprefix("samples/")).read_bytes()
    return (require_datasets() / relative).read_bytes()


def _run_all(image) -> dict[str, object]:
    """Run every prediction of an uploaded image; its predictions by model name."""
    for prediction in image.predictions.all():
        runtime.run_batch(prediction_id=prediction.id)
    return {p.model.name: p for p in image.predictions.select_related("model")}


def test_every_shipped_model_is_routed_here():
    assert set(ROUTES) == {name for name, _ in OWN_IMAGES} == {d.name for d in shipped_model_dirs()}


@pytest.mark.parametrize(("name", "relative"), OWN_IMAGES, ids=[Path(r).name for _, r in OWN_IMAGES])
def test_each_shipped_model_labels_an_image_of_its_own_kind(shipped_models, name, relative):
    study = StudyFactory(**ROUTES[name])
    image = image_upload(study=study, data=_own_image(relative)).image

    prediction = _run_all(image)[name]

    assert prediction.status == PredictionStatus.SUCCEEDED, prediction.error
    assert prediction.label in prediction.model.labels


@pytest.mark.parametrize(
    ("sample", "route", "models"),
    [
        ("derm-nv-1.jpg", "cxr-covid19", {"cxr-covid19", "cxr-pneumonia"}),
        ("smear-lymphocyte-1.jpg", "cxr-covid19", {"cxr-covid19", "cxr-pneumonia"}),
        ("smear-lymphocyte-1.jpg", "mri-brain-tumour", {"mri-brain-tumour"}),
    ],
)
def test_a_colour_photograph_in_a_grey_modalitys_study_is_not_labelled(shipped_models, sample, route, models):
    image = image_upload(study=StudyFactory(**ROUTES[route]), data=(SAMPLES / sample).read_bytes()).image

    predictions = _run_all(image)

    assert set(predictions) == models
    for name, prediction in predictions.items():
        kind = prediction.model.card["input_check"]["image_kind"]
        assert prediction.status == PredictionStatus.FAILED, name
        assert prediction.label == "" and prediction.probabilities is None
        assert prediction.error == (
            f"Not run: this image is in colour; the {kind} images this model was trained on are greyscale, "
            "so no label was given."
        )


def test_a_chest_film_in_a_dermoscopy_study_is_not_labelled(shipped_models):
    # Enlarged past the dermoscopy model's input, so that the size rule does not answer first.
    film = read_image(SAMPLES / "cxr-normal-1.png")
    film = np.asarray(PILImage.fromarray(film).resize((224, 224), PILImage.Resampling.BILINEAR))
    image = image_upload(study=StudyFactory(**ROUTES["derm-melanoma"]), data=_png(film)).image

    (prediction,) = _run_all(image).values()

    assert prediction.model.name == "derm-melanoma"
    assert prediction.status == PredictionStatus.FAILED and prediction.label == ""
    assert prediction.error == (
        "Not run: this image is greyscale or nearly so; the dermoscopy images this model was trained on are "
        "in colour, so no label was given."
    )


def test_a_monochrome_dicom_chest_film_is_read_as_grey(chest_radiograph):
    from imaging.dicom.pixels import dicom_pixels  # noqa: PLC0415

    assert dicom_pixels(chest_radiograph()).ndim == 2
    assert ood.colourfulness(dicom_pixels(chest_radiograph())) == 0.0
