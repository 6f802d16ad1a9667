"""Evaluate a model on labelled data (an npz split or a class-folder directory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .calibration import cross_fitted_calibration
from .datasets import list_class_folder, load_npz, read_image
from .metrics import (
    bootstrap_intervals,
    classification_report,
    expected_calibration_error,
    negative_log_likelihood,
)
from .preprocessing import to_model_batch
from .recipes import recipe_for_card
from .serving import load_bundle, model_input_shape, model_output_width, predict_proba, raw_proba
from .training import load_data


class EvaluationError(ValueError):
    """Data and model do not fit together (labels, shapes, missing split)."""


def read_file_list(path: str | Path) -> list[str]:
    """``<class>/<file>`` paths, one a line (blank lines and ``#`` comments ignored)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def load_labelled_images(
    data_path: str | Path, labels: list[str], *, split: str = "test", files: list[str] | None = None
) -> tuple[list[np.ndarray] | np.ndarray, np.ndarray]:
    """Images and label indices in the model's label order.

    npz: ``<split>_images``/``<split>_labels`` with integer labels that must index
    ``labels``. Directory: one sub-folder per class whose names must be the model's
    labels (any subset, in any order; they are mapped by name). ``files`` keeps only
    those ``<class>/<file>`` paths of a directory (e.g. a card's validation files).
    """
    data_path = Path(data_path)
    if not data_path.exists():
        raise EvaluationError(f"{data_path} does not exist")
    if data_path.is_dir():
        folders, entries = list_class_folder(data_path)
        if files is not None:
            wanted = {Path(f).as_posix() for f in files}
            entries = [(p, i) for p, i in entries if p.relative_to(data_path).as_posix() in wanted]
            found = {p.relative_to(data_path).as_posix() for p, _ in entries}
            missing = sorted(wanted - found)
            if missing:
                raise EvaluationError(f"{len(missing)} listed files are not in {data_path}, e.g. {missing[0]}")
        unknown = [f for f in folders if f not in labels]
        if unknown:
            raise EvaluationError(f"class folders {unknown} are not labels of this model ({labels})")
        images = [read_image(path) for path, _ in entries]
        y = np.array([labels.index(folders[i]) for _, i in entries], dtype=np.int64)
        return images, y
    if files is not None:
        raise EvaluationError("a file list needs a directory of class sub-folders, not an npz file")
    try:
        data = load_npz(data_path, split)
    except KeyError as exc:
        raise EvaluationError(str(exc.args[0])) from exc
    if len(data.labels) and data.labels.max() >= len(labels):
        raise EvaluationError(
            f"{data_path.name} has label {int(data.labels.max())} but the model has {len(labels)} labels"
        )
    images = data.images
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise EvaluationError(f"{data_path.name}: images of shape {images.shape[1:]} are not HxW or HxWx3")
    return images, data.labels


def evaluate(
    model,
    card: dict,
    data_path: str | Path,
    *,
    split: str = "test",
    files: list[str] | None = None,
    bootstrap: int = 0,
) -> dict:
    """Accuracy, balanced accuracy, macro AUC, n, per-class sensitivity/specificity, 15-bin
    ECE, log-loss and the confusion matrix (rows true, columns predicted, in label order),
    all after the card's temperature; ``bootstrap`` > 0 adds 95 % percentile intervals."""
    labels = list(card["labels"])
    width = model_output_width(model)
    if width != len(labels):
        raise EvaluationError(f"the model has {width} outputs but its card lists {len(labels)} labels")
    height, width_px = (int(v) for v in card["input_size"])
    channels = 1 if card["color_mode"] == "grayscale" else 3
    expected = model_input_shape(model)
    if any(e is not None and e != g for e, g in zip(expected, (height, width_px, channels), strict=True)):
        raise EvaluationError(f"the card says input {height}x{width_px}x{channels} but the model expects {expected}")
    images, y = load_labelled_images(data_path, labels, split=split, files=files)
    if len(y) == 0:
        raise EvaluationError(f"no labelled images found in {data_path}")
    batch = to_model_batch(
        images,
        input_size=(height, width_px),
        color_mode=card["color_mode"],
        resize=(card.get("preprocessing") or {}).get("resize", "stretch"),
    )
    proba = predict_proba(model, batch, temperature=float(card.get("temperature") or 1.0))
    report = classification_report(y, proba, labels)
    result = {
        "accuracy": report["accuracy"],
        "balanced_accuracy": report["balanced_accuracy"],
        "macro_auc": report["macro_auc"],
        "ece": round(expected_calibration_error(y, proba), 6),
        "log_loss": round(negative_log_likelihood(y, proba), 6),
        "n": report["n"],
        "per_class": report["per_class"],
        "confusion_matrix": report["confusion_matrix"],
    }
    if bootstrap:
        result["ci95"] = bootstrap_intervals(y, proba, n_resamples=bootstrap)
    return result


def remeasure_cross_fitted(model_dir: str | Path, *, datasets_root: str | Path) -> tuple[float, dict]:
    """A card's temperature and ``metrics.cross_fitted`` worked out again from the shipped weights.

    The same images as in training: the calibration part carved out of training with the
    card's seed, and the validation split.
    """
    bundle = load_bundle(model_dir)
    card = bundle.card
    recipe = recipe_for_card(card)
    account = card["metrics"]["cross_fitted"]
    data = load_data(recipe, datasets_root=datasets_root, seed=int(card["seed"]))
    pooled = [part for part in (data.calibration, data.val) if part is not None]
    return cross_fitted_calibration(
        np.concatenate([raw_proba(bundle.model, part.images) for part in pooled]),
        np.concatenate([part.labels for part in pooled]),
        card["labels"],
        folds=int(account["folds"]),
        seed=int(account["fold_seed"]),
        sizes=[int(n) for n in account["ece_noise_floor"]],
    )
