"""Model cards: the ``card.json`` written beside every ``model.keras``.

The Django model registry reads these keys, so ``validate_card`` checks their
presence and types before a card is written or trusted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

CARD_FILENAME = "card.json"
MODEL_FILENAME = "model.keras"

REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "version": str,
    "display_name": str,
    "task": str,
    "labels": list,
    "normal_labels": (list, type(None)),
    "input_size": list,
    "color_mode": str,
    "preprocessing": dict,
    "modalities": list,
    "body_part": str,
    "procedure": str,
    "temperature": (int, float),
    "gradcam_layer": (str, type(None)),
    "dataset": dict,
    "intended_use": str,
    "limitations": str,
    "not_for": str,
    "metrics": dict,
    "published_benchmark": dict,
    "parameters": int,
    "training_time_s": (int, float),
    "trained_at": str,
    "framework": dict,
    "seed": int,
    "recipe": dict,
}
DATASET_KEYS = ("name", "path", "source", "licence", "citation", "splits", "validation_method")
VALIDATION_METRIC_KEYS = (
    "accuracy",
    "balanced_accuracy",
    "macro_auc",
    "ece_before",
    "ece_after",
    "per_class",
    "confusion_matrix",
    "n",
)
# A temperature fitted on validation too is accounted for on images it did not see.
CROSS_FITTED_KEYS = ("n", "folds", "fold_seed", "ece", "log_loss", "ci95", "over_fold_draws", "ece_noise_floor")


class CardError(ValueError):
    """A model card is missing keys or has inconsistent values."""


def validate_card(card: dict) -> dict:
    """Raise ``CardError`` listing every problem; return the card unchanged when valid."""
    problems: list[str] = []
    for key, kind in REQUIRED_KEYS.items():
        if key not in card:
            problems.append(f"missing key {key!r}")
        elif not isinstance(card[key], kind) or (kind is int and isinstance(card[key], bool)):
            problems.append(f"{key!r} has type {type(card[key]).__name__}")
    if problems:
        raise CardError("; ".join(problems))
    labels = card["labels"]
    if len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
        problems.append("labels must be at least two non-empty strings")
    if len(set(labels)) != len(labels):
        problems.append("labels must be unique")
    if card["normal_labels"] is not None:
        unknown = [x for x in card["normal_labels"] if x not in labels]
        if unknown:
            problems.append(f"normal_labels not in labels: {unknown}")
    size = card["input_size"]
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        problems.append("input_size must be [height, width] positive integers")
    if card["color_mode"] not in ("grayscale", "rgb"):
        problems.append("color_mode must be 'grayscale' or 'rgb'")
    if card["preprocessing"].get("resize") not in ("stretch", "pad"):
        problems.append("preprocessing.resize must be 'stretch' or 'pad'")
    temperature = card["temperature"]
    if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0):
        problems.append("temperature must be a positive number")
    if not card["modalities"] or not all(isinstance(m, str) for m in card["modalities"]):
        problems.append("modalities must be a non-empty list of DICOM modality codes")
    missing_ds = [k for k in DATASET_KEYS if k not in card["dataset"]]
    if missing_ds:
        problems.append(f"dataset is missing {missing_ds}")
    validation = card["metrics"].get("validation")
    if not isinstance(validation, dict):
        problems.append("metrics.validation missing")
    else:
        missing_m = [k for k in VALIDATION_METRIC_KEYS if k not in validation]
        if missing_m:
            problems.append(f"metrics.validation is missing {missing_m}")
        elif set(validation["per_class"]) != set(labels):
            problems.append("metrics.validation.per_class must have one entry per label")
    cross_fitted = card["metrics"].get("cross_fitted")
    if cross_fitted is not None:
        missing_x = [k for k in CROSS_FITTED_KEYS if not isinstance(cross_fitted, dict) or k not in cross_fitted]
        if missing_x:
            problems.append(f"metrics.cross_fitted is missing {missing_x}")
    if "accuracy" not in card["published_benchmark"] or "source" not in card["published_benchmark"]:
        problems.append("published_benchmark needs 'accuracy' and 'source'")
    if problems:
        raise CardError("; ".join(problems))
    return card


def _json_default(value):
    # numpy scalars and tuples from recipes end up in cards; keep JSON plain.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_card(card: dict, directory: str | Path) -> Path:
    """Validate and write ``card.json`` into ``directory``; returns its path."""
    card = json.loads(json.dumps(card, default=_json_default))
    validate_card(card)
    path = Path(directory) / CARD_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_card(path: str | Path) -> dict:
    """Read and validate a card; ``path`` may be the card, its directory or the model file."""
    path = Path(path)
    if path.is_dir():
        path = path / CARD_FILENAME
    elif path.suffix in (".keras", ".h5"):
        path = path.with_name(CARD_FILENAME)
    if not path.exists():
        raise FileNotFoundError(f"no model card at {path}")
    return validate_card(json.loads(path.read_text(encoding="utf-8")))
