"""Every shipped model, evaluated on its validation split, reproduces the figures on its model card.

Needs the full data sets (always there in CI)."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from inference.ml.evaluation import remeasure_cross_fitted
from inference.ml.ood_build import OutsideImages, remeasure_input_check
from inference.services import shipped_model_dirs
from tests.conftest import require_datasets

pytestmark = pytest.mark.datasets

MODEL_DIRS = shipped_model_dirs()


def validation_data(card: dict, datasets: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """The validation split the card was measured on, as evaluate_model takes it."""
    root = datasets / card["dataset"]["path"]
    npz = sorted(root.glob("*.npz"))
    if npz:
        return npz[0], ["--split", "val"]
    if (root / "val").is_dir():
        return root / "val", []
    # Carved out of the training folder (brain MRI): the files the card lists, as a file list.
    listing = tmp_path / "validation_files.txt"
    listing.write_text("\n".join(card["dataset"]["validation_files"]) + "\n")
    return root / "Training", ["--files", str(listing)]


def test_every_dataset_has_its_shipped_model():
    names = {directory.name for directory in MODEL_DIRS}
    assert names == {
        "cxr-pneumonia", "cxr-covid19", "mri-brain-tumour", "derm-melanoma",
        "fundus-dr-grade", "smear-cell-type", "smear-malaria", "us-breast",
    }  # fmt: skip


@pytest.mark.parametrize("directory", MODEL_DIRS, ids=[d.name for d in MODEL_DIRS])
def test_evaluate_model_reproduces_the_card(directory, tmp_path):
    datasets = require_datasets()
    card = json.loads((directory / "card.json").read_text())
    data, extra = validation_data(card, datasets, tmp_path)
    stdout = io.StringIO()

    call_command(
        "evaluate_model",
        str(directory / "model.keras"),
        "--data",
        str(data),
        *extra,
        "--bootstrap",
        "1000",
        stdout=stdout,
    )

    result = json.loads(stdout.getvalue())
    expected = card["metrics"]["validation"]
    assert result["n"] == expected["n"] == card["dataset"]["splits"]["val"]
    for key in ("accuracy", "balanced_accuracy", "macro_auc"):
        assert result[key] == pytest.approx(expected[key], abs=2e-3), key
    for key, interval in expected["ci95"].items():
        assert result["ci95"][key] == pytest.approx(interval, abs=5e-3), key
    assert result["confusion_matrix"] == expected["confusion_matrix"]
    assert result["ece"] == pytest.approx(expected["ece_after"], abs=2e-3)
    assert result["log_loss"] == pytest.approx(expected["nll_after"], abs=2e-3)
    for label, figures in expected["per_class"].items():
        assert result["per_class"][label]["sensitivity"] == pytest.approx(figures["sensitivity"], abs=2e-3)
        assert result["per_class"][label]["specificity"] == pytest.approx(figures["specificity"], abs=2e-3)


CROSS_FITTED_DIRS = [d for d in MODEL_DIRS if "cross_fitted" in json.loads((d / "card.json").read_text())["metrics"]]


@pytest.mark.parametrize("directory", CROSS_FITTED_DIRS, ids=[d.name for d in CROSS_FITTED_DIRS])
def test_cross_fitted_calibration_reproduces_the_card(directory):
    """The temperature fitted on the calibration part and validation together, its cross-fitted
    figures and the ECE noise floor come out of the shipped weights and the data again."""
    card = json.loads((directory / "card.json").read_text())
    expected = card["metrics"]["cross_fitted"]

    temperature, result = remeasure_cross_fitted(directory, datasets_root=require_datasets())

    assert temperature == pytest.approx(card["temperature"], abs=1e-3)
    assert (
        result["n"]
        == expected["n"]
        == card["dataset"]["splits"]["val"] + card["dataset"]["splits"].get("calibration", 0)
    )
    assert result["fold_temperatures"] == pytest.approx(expected["fold_temperatures"], abs=1e-3)
    for key in ("accuracy", "balanced_accuracy", "macro_auc", "ece", "log_loss", "ece_uncalibrated"):
        assert result[key] == pytest.approx(expected[key], abs=2e-3), key
    assert result["log_loss_uncalibrated"] == pytest.approx(expected["log_loss_uncalibrated"], abs=2e-3)
    for key, interval in expected["ci95"].items():
        assert result["ci95"][key] == pytest.approx(interval, abs=5e-3), key
    for key, figure in expected["over_fold_draws"].items():
        assert result["over_fold_draws"][key] == pytest.approx(figure, abs=2e-3), key
    assert result["ece_noise_floor"].keys() == expected["ece_noise_floor"].keys()
    for size, floor in expected["ece_noise_floor"].items():
        for key, figure in floor.items():
            assert result["ece_noise_floor"][size][key] == pytest.approx(figure, abs=5e-3), (size, key)


@pytest.fixture(scope="module")
def outside_images():
    return OutsideImages(require_datasets())


@pytest.mark.parametrize("directory", MODEL_DIRS, ids=[d.name for d in MODEL_DIRS])
def test_input_check_reproduces_the_card(directory, outside_images):
    """The shipped input check (pinned by sha256), colour rule included, gives the card's AUROC and
    refusal rates again."""
    card = json.loads((directory / "card.json").read_text())
    expected = card["input_check"]
    result = remeasure_input_check(directory, datasets_root=require_datasets(), outside=outside_images)

    assert result["own_validation_n"] == card["dataset"]["splits"]["val"]
    for key in ("auroc", "own_validation_refused", "other_refused"):
        assert result[key] == pytest.approx(expected[key], abs=2e-3), key
    assert result["per_source"].keys() == expected["per_source"].keys()
    for source, figures in expected["per_source"].items():
        assert result["per_source"][source]["auroc"] == pytest.approx(figures["auroc"], abs=2e-3), source
        # Within one image: a score a rounding away from the threshold may fall either side of it.
        within_one = 1.0 / figures["n"] + 1e-6
        assert result["per_source"][source]["refused"] == pytest.approx(figures["refused"], abs=within_one), source
    # The bar for every model: under 1% of its own validation images refused.
    assert expected["own_validation_refused"] < 0.01
