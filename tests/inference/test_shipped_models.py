"""Every shipped model, evaluated on its validation split, reproduces the figures on its model card.

Needs the full data sets (always there in CI)."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

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


@pytest.fixture(scope="module")
def outside_images():
    return OutsideImages(require_datasets())


@pytest.mark.parametrize("directory", MODEL_DIRS, ids=[d.name for d in MODEL_DIRS])
def test_input_check_reproduces_the_card(directory, outside_images):
    """The shipped input check (pinned by sha256) gives the card's AUROC and refusal rates again."""
    card = json.loads((directory / "card.json").read_text())
    expected = card["input_check"]
    result = remeasure_input_check(directory, datasets_root=require_datasets(), outside=outside_images)

    assert result["own_validation_n"] == card["dataset"]["splits"]["val"]
    for key in ("auroc", "own_validation_refused", "other_refused"):
        assert result[key] == pytest.approx(expected[key], abs=2e-3), key
    assert result["per_source"].keys() == expected["per_source"].keys()
    for source, figures in expected["per_source"].items():
        assert result["per_source"][source]["auroc"] == pytest.approx(figures["auroc"], abs=2e-3), source
    # The bar for every model: under 1% of its own validation images refused.
    assert expected["own_validation_refused"] < 0.01
