"""The train_model, evaluate_model and register_model management commands."""

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from inference.ml import metrics
from inference.ml.recipes import get_recipe
from inference.ml.serving import load_bundle
from inference.models import AIModel, AIModelStatus
from tests.conftest import require_datasets

REPO_ROOT = Path(__file__).resolve().parents[2]
PNEUMONIA = REPO_ROOT / "inference" / "zoo" / "cxr-pneumonia" / "model.keras"


@pytest.fixture(scope="module")
def h5_model(tmp_path_factory) -> Path:
    # TensorFlow takes seconds to load; only the tests that build this model pay for it.
    import keras  # noqa: PLC0415
    from keras import layers  # noqa: PLC0415

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(16, 16, 1)),
            layers.Rescaling(1 / 255.0),
            layers.Conv2D(4, 3, activation="relu", name="conv"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(2, activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("h5") / "foreign.h5"
    model.save(path)
    return path


def _register(path, version, *extra):
    out = StringIO()
    call_command(
        "register_model",
        str(path),
        "--name",
        "foreign-cxr",
        "--version",
        version,
        "--labels",
        "normal",
        "pneumonia",
        "--normal-labels",
        "normal",
        "--modality",
        "CR",
        "DX",
        "--body-part",
        "CHEST",
        "--input-size",
        "16",
        "16",
        "--color-mode",
        "grayscale",
        *extra,
        stdout=out,
    )
    return out.getvalue()


@pytest.mark.django_db
def test_register_model_adds_versions_and_keeps_old_ones(h5_model):
    assert "foreign-cxr v1" in _register(h5_model, "1")
    first = AIModel.objects.get(name="foreign-cxr", version="1")
    assert first.status == AIModelStatus.ACTIVE and first.labels == ["normal", "pneumonia"]
    assert first.gradcam_layer == "conv"

    _register(h5_model, "2")
    first.refresh_from_db()
    assert first.status == AIModelStatus.RETIRED
    assert AIModel.objects.get(name="foreign-cxr", version="2").status == AIModelStatus.ACTIVE


@pytest.mark.django_db
def test_register_model_refuses_mismatched_outputs_and_inputs(h5_model):
    with pytest.raises(CommandError, match="2 outputs but 3 labels"):
        call_command(
            "register_model",
            str(h5_model),
            "--name=x",
            "--version=1",
            "--labels",
            "a",
            "b",
            "c",
            "--modality=CR",
            "--body-part=CHEST",
            "--input-size",
            "16",
            "16",
            "--color-mode=grayscale",
        )
    with pytest.raises(CommandError, match="channels"):
        call_command(
            "register_model",
            str(h5_model),
            "--name=x",
            "--version=1",
            "--labels",
            "a",
            "b",
            "--modality=CR",
            "--body-part=CHEST",
            "--input-size",
            "16",
            "16",
            "--color-mode=rgb",
        )
    assert not AIModel.objects.filter(name="x").exists()


def _evaluate(*args) -> dict:
    out = StringIO()
    call_command("evaluate_model", *args, stdout=out)
    return json.loads(out.getvalue())


def test_evaluate_model_file_prints_metrics_json(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "toy.npz"
    np.savez(
        data,
        test_images=rng.integers(0, 255, (20, 28, 28), dtype=np.uint8),
        test_labels=np.array([[0], [1]] * 10, dtype=np.uint8),
    )
    result = _evaluate(str(PNEUMONIA), "--data", str(data))
    assert result["n"] == 20
    assert set(result["per_class"]) == {"normal", "pneumonia"}
    for key in ("accuracy", "balanced_accuracy", "macro_auc"):
        assert 0.0 <= result[key] <= 1.0

    bad = tmp_path / "bad.npz"
    np.savez(bad, test_images=np.zeros((2, 28, 28), np.uint8), test_labels=np.array([[0], [5]], np.uint8))
    with pytest.raises(CommandError, match="label 5"):
        _evaluate(str(PNEUMONIA), "--data", str(bad))
    with pytest.raises(CommandError, match="no split 'val'"):
        _evaluate(str(PNEUMONIA), "--data", str(data), "--split", "val")


@pytest.mark.django_db
def test_evaluate_model_by_registered_name(h5_model, tmp_path):
    _register(h5_model, "1")
    folder = tmp_path / "images"

    for label in ("normal", "pneumonia"):
        (folder / label).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (40, 30), color=40 * i).save(folder / label / f"{i}.png")
    result = _evaluate("foreign-cxr", "--data", str(folder))
    assert result["n"] == 6 and result["version"] == "1"


def test_train_model_command_tiny_run(tmp_path):
    root = require_datasets()
    out = StringIO()
    call_command(
        "train_model",
        "us-breast",
        "--datasets-root",
        str(root),
        "--output",
        str(tmp_path),
        "--epochs",
        "1",
        "--limit",
        "16",
        "--init-seed",
        "7",
        stdout=out,
    )
    summary = json.loads(out.getvalue())
    assert summary["name"] == "us-breast" and summary["n"] > 0
    assert (tmp_path / "model.keras").exists() and (tmp_path / "card.json").exists()
    training = json.loads((tmp_path / "card.json").read_text())["recipe"]["training"]
    assert training["init_seed"] == 7
    assert "--init-seed 7" in training["command"]


def test_evaluate_model_reports_calibration_confusion_and_takes_a_file_list(tmp_path):
    folder = tmp_path / "images"
    rng = np.random.default_rng(1)
    for label in ("normal", "pneumonia"):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(folder / label / f"{i}.png")
    listed = ["normal/0.png", "normal/3.png", "pneumonia/1.png", "pneumonia/5.png", "pneumonia/2.png"]
    file_list = tmp_path / "val.txt"
    file_list.write_text("# validation subset\n" + "\n".join(listed) + "\n\n")

    result = _evaluate(str(PNEUMONIA), "--data", str(folder), "--files", str(file_list), "--bootstrap", "200")

    assert result["n"] == 5
    cm = np.array(result["confusion_matrix"])
    assert cm.shape == (2, 2) and cm.sum() == 5 and cm[0].sum() == 2 and cm[1].sum() == 3
    # The same figures, computed independently from the served probabilities.
    bundle = load_bundle(PNEUMONIA)
    images = [np.asarray(Image.open(folder / f)) for f in listed]
    proba = bundle.predict(images)
    y = np.array([0, 0, 1, 1, 1])
    assert result["ece"] == pytest.approx(metrics.expected_calibration_error(y, proba), abs=1e-5)
    assert result["log_loss"] == pytest.approx(metrics.negative_log_likelihood(y, proba), abs=1e-5)
    lo, hi = result["ci95"]["accuracy"]
    assert 0.0 <= lo <= result["accuracy"] <= hi <= 1.0

    file_list.write_text("normal/0.png\nnormal/missing.png\n")
    with pytest.raises(CommandError, match="not in"):
        _evaluate(str(PNEUMONIA), "--data", str(folder), "--files", str(file_list))


def test_train_model_never_overwrites_a_trained_version(tmp_path):
    recipe = get_recipe("us-breast")
    (tmp_path / "card.json").write_text(json.dumps({"name": recipe.name, "version": recipe.version}))
    (tmp_path / "model.keras").write_bytes(b"shipped weights")
    with pytest.raises(CommandError, match="already holds"):
        call_command("train_model", "us-breast", "--output", str(tmp_path), "--epochs", "1", "--limit", "8")
    assert (tmp_path / "model.keras").read_bytes() == b"shipped weights"


def _zoo_with(tmp_path: Path, name: str, version: str) -> Path:
    """A zoo holding the shipped us-breast weights under another name and version."""
    source = REPO_ROOT / "inference" / "zoo" / "us-breast"
    directory = tmp_path / f"zoo-{version}" / name
    directory.mkdir(parents=True)
    for file in source.iterdir():
        (directory / file.name).write_bytes(file.read_bytes())
    card = json.loads((source / "card.json").read_text())
    card.update(name=name, version=version)
    (directory / "card.json").write_text(json.dumps(card))
    return directory.parent


@pytest.mark.django_db
def test_a_newer_shipped_version_takes_over_and_retires_the_old_one(tmp_path):
    from inference.services import aimodels_register_shipped  # noqa: PLC0415

    (old,) = aimodels_register_shipped(zoo=_zoo_with(tmp_path, "zoo-breast", "1.0.0"))
    assert old.status == AIModelStatus.ACTIVE

    (new,) = aimodels_register_shipped(zoo=_zoo_with(tmp_path, "zoo-breast", "2.0.0"))

    old.refresh_from_db()
    assert (new.version, new.status) == ("2.0.0", AIModelStatus.ACTIVE)
    assert old.status == AIModelStatus.RETIRED and old.retired_at is not None
    # Running it again (every start-up does) changes nothing.
    aimodels_register_shipped(zoo=_zoo_with(tmp_path / "again", "zoo-breast", "2.0.0"))
    assert AIModel.objects.active().get(name="zoo-breast").version == "2.0.0"


@pytest.mark.django_db
def test_shipping_never_unseats_a_locally_activated_or_newer_version(tmp_path):
    from inference.services import aimodel_activate, aimodels_register_shipped  # noqa: PLC0415

    (shipped,) = aimodels_register_shipped(zoo=_zoo_with(tmp_path, "zoo-breast", "2.0.0"))
    (local,) = aimodels_register_shipped(zoo=_zoo_with(tmp_path, "zoo-breast", "2.1.0-local"))
    assert local.status != AIModelStatus.ACTIVE  # not a plain release number: never auto-activated
    aimodel_activate(model=local)

    aimodels_register_shipped(zoo=_zoo_with(tmp_path / "again", "zoo-breast", "2.0.0"))
    aimodels_register_shipped(zoo=_zoo_with(tmp_path, "zoo-breast", "1.0.0"))

    assert AIModel.objects.active().get(name="zoo-breast").version == "2.1.0-local"
