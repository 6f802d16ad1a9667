"""Build and measure a shipped model's input check (``ood.npz``) from the data sets.

The check is fitted on the model's own training images and scaled on its validation
images (see ``ood``). It is measured against the validation images of every *other*
data set (each read through this model's own preprocessing, as the worker would) and
against synthetic noise, blank, saturated and photo-like images. The colour rule reads
every image as decoded, before this model's preprocessing, as the worker does. Results
and the file's sha256 go into the card under ``input_check``.

    python -m inference.ml.ood_build inference/zoo/cxr-covid19 [more dirs...]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from . import cards
from .datasets import list_class_folder, load_npz, read_image, stratified_limit, stratified_split
from .ood import (
    OOD_FILENAME,
    SYNTHETIC_KINDS,
    InputCheck,
    check_report,
    colourfulness,
    feature_model,
    features_and_proba,
    fit_check,
    synthetic_images,
)
from .preprocessing import to_model_batch
from .recipes import RECIPES, Recipe, recipe_for_card
from .serving import load_bundle
from .training import default_datasets_root

logger = logging.getLogger(__name__)

# How a refusal names what the model reads: "this image does not look like the <kind> images ...".
IMAGE_KINDS = {
    "cxr-pneumonia": "chest X-ray",
    "cxr-covid19": "chest X-ray",
    "us-breast": "breast ultrasound",
    "fundus-dr-grade": "colour fundus photograph",
    "smear-malaria": "thin blood smear red-cell",
    "smear-cell-type": "peripheral blood smear cell",
    "derm-melanoma": "dermoscopy",
    "mri-brain-tumour": "brain MRI",
}
OTHER_PER_DATASET = 60
SYNTHETIC_PER_KIND = 20
# Training images the distances are fitted on (a stratified sample; more buy little on these
# feature sizes with the covariance shrunk, and the build has to run on a shared CPU).
TRAIN_SAMPLE = 800
SEED = 1234


def _same_route(a: Recipe, b: Recipe) -> bool:
    """Studies routed to one model can legitimately hold the other's images (e.g. two chest X-ray sets)."""
    return bool(set(a.modalities) & set(b.modalities)) and a.body_part == b.body_part and a.procedure == b.procedure


def split_images(
    recipe: Recipe,
    datasets_root: Path,
    *,
    split: str = "val",
    limit: int | None,
    seed: int,
    split_seed: int | None = None,
    validation_files: list[str] | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Raw (uint8, original size) images and labels of a recipe's "train" or "val" split, in file order.

    ``limit`` keeps a stratified sample (drawn with ``seed``) and decodes only that; ``split_seed``
    is the seed a validation split carved from the training folder, and a calibration part held
    out of training, were drawn with (the recipe's by default); ``validation_files`` (a card's
    list) names the carved validation files instead. The training split excludes validation and
    (as a stratified draw) the calibration part; the check's fit only samples it.
    """
    path = datasets_root / recipe.dataset_path
    split_seed = recipe.seed if split_seed is None else split_seed
    if recipe.layout == "npz":
        data = load_npz(path / recipe.npz_file, recipe.train_split if split == "train" else (recipe.val_split or "val"))
        labels = data.labels
        indices = np.arange(len(labels))
        images = data.images
    else:
        if split == "val" and recipe.val_split is not None:
            _, entries = list_class_folder(path / recipe.val_split)
        else:
            _, entries = list_class_folder(path / recipe.train_split)
            if recipe.val_split is None and validation_files is not None:
                # The card lists the carved files (a grouped carve cannot be redrawn from a seed alone).
                listed = set(validation_files)
                entries = [e for e in entries if (f"{e[0].parent.name}/{e[0].name}" in listed) == (split == "val")]
            elif recipe.val_split is None:
                keep, held = stratified_split(
                    np.array([label for _, label in entries]), fraction=recipe.val_fraction, seed=split_seed
                )
                entries = [entries[i] for i in (held if split == "val" else keep)]
        labels = np.array([label for _, label in entries], dtype=np.int64)
        indices = np.arange(len(entries))
        images = None
    if split == "train" and recipe.calibration_fraction:
        keep, _ = stratified_split(labels, fraction=recipe.calibration_fraction, seed=split_seed + 1)
        indices, labels = indices[keep], labels[keep]
    if limit:
        chosen = stratified_limit(labels, limit, seed=seed)
        indices, labels = indices[chosen], labels[chosen]
    if images is not None:
        return [images[i] for i in indices], labels
    return [read_image(entries[i][0]) for i in indices], labels


def validation_images(
    recipe: Recipe,
    datasets_root: Path,
    *,
    limit: int | None,
    seed: int,
    split_seed: int | None = None,
    validation_files: list[str] | None = None,
) -> list[np.ndarray]:
    """Raw validation images of a recipe's data set (see ``split_images``)."""
    return split_images(
        recipe,
        datasets_root,
        split="val",
        limit=limit,
        seed=seed,
        split_seed=split_seed,
        validation_files=validation_files,
    )[0]


class OutsideImages:
    """Validation images of every data set plus synthetic images, loaded once per process."""

    def __init__(
        self, datasets_root: Path, *, per_dataset: int = OTHER_PER_DATASET, per_kind: int = SYNTHETIC_PER_KIND
    ):
        self.datasets_root = Path(datasets_root)
        self.per_dataset = per_dataset
        self.per_kind = per_kind
        self._cache: dict[str, list[np.ndarray]] = {}

    def sources(self, own_dataset: str) -> dict[str, list[np.ndarray]]:
        out: dict[str, list[np.ndarray]] = {}
        for recipe in RECIPES.values():
            if recipe.dataset_path == own_dataset or not (self.datasets_root / recipe.dataset_path).exists():
                continue
            key = f"dataset:{recipe.dataset_path}"
            if key not in self._cache:
                self._cache[key] = validation_images(recipe, self.datasets_root, limit=self.per_dataset, seed=SEED)
            out[key] = self._cache[key]
        for i, kind in enumerate(SYNTHETIC_KINDS):
            key = f"synthetic:{kind}"
            if key not in self._cache:
                self._cache[key] = synthetic_images(kind, self.per_kind, seed=SEED + i)
            out[key] = self._cache[key]
        return out


def build_input_check(
    model_dir: str | Path,
    *,
    datasets_root: str | Path | None = None,
    outside: OutsideImages | None = None,
    limit: int | None = None,
) -> dict:
    """Fit, save and measure the input check of the model in ``model_dir``; updates its card.

    Returns the card's new ``input_check`` entry. ``limit`` caps the images per split
    (smoke tests).
    """
    model_dir = Path(model_dir)
    datasets_root = Path(datasets_root) if datasets_root else default_datasets_root()
    bundle = load_bundle(model_dir)
    card = bundle.card
    recipe = recipe_for_card(card)
    split_seed = int(card["seed"])

    def batch_of(split: str, n: int | None) -> tuple[np.ndarray, np.ndarray, list[float]]:
        images, labels = split_images(
            recipe,
            datasets_root,
            split=split,
            limit=n,
            seed=SEED,
            split_seed=split_seed,
            validation_files=card["dataset"].get("validation_files"),
        )
        geometry = {"input_size": recipe.input_size, "color_mode": recipe.color_mode, "resize": recipe.resize}
        return to_model_batch(images, **geometry), labels, [colourfulness(image) for image in images]

    train_batch, train_labels, train_colours = batch_of("train", min(limit or TRAIN_SAMPLE, TRAIN_SAMPLE))
    val_batch, _, val_colours = batch_of("val", limit)
    twin = feature_model(bundle.model)

    _, train_features = features_and_proba(twin, train_batch)
    _, val_features = features_and_proba(twin, val_batch)
    check = fit_check(
        train_features,
        train_labels,
        val_features,
        val_batch,
        train_batch=train_batch,
        train_colourfulness=train_colours,
        val_colourfulness=val_colours,
    )
    sha256 = check.save(model_dir / OOD_FILENAME)
    # Measure what ships (float32 on disk), so the card's figures can be recomputed exactly.
    check = InputCheck.load(model_dir / OOD_FILENAME, sha256=sha256)

    outside = outside or OutsideImages(datasets_root)
    report = measure_input_check(check, twin, val_batch, recipe, outside, val_colourfulness=val_colours)
    entry = {
        "image_kind": IMAGE_KINDS.get(card["name"], card["display_name"].split(":")[0]),
        "file": OOD_FILENAME,
        "sha256": sha256,
        "method": (
            "largest of the Mahalanobis distances of each residual stage's pooled activations (per-channel "
            "spatial mean and std, square-rooted; class means and one covariance shrunk 10% towards its "
            "diagonal, fitted on a stratified sample of the training images), each divided by its 99th "
            "percentile on validation; "
            "blank or saturated images, and images with a pixel statistic outside the training range widened "
            "by a quarter of it, are refused outright; so are images whose colourfulness as decoded (mean "
            "over pixels of the spread between the colour channels, 0 for grey) lies outside half the least "
            "to the most colourful training image plus a quarter of that span, and at least 0.02; "
            "threshold = 1.5 x the 99.5th percentile of the validation scores (inference.ml.ood)"
        ),
        "threshold": round(check.threshold, 6),
        "colour_range": [round(float(v), 6) for v in check.colour_range],
        "colour_of_training_images": [round(float(v), 6) for v in check.colour_seen],
        "fitted_on": {"train": len(train_batch), "val": len(val_batch)},
        "measured_against": (
            f"up to {outside.per_dataset} validation images of each other data set, read through this "
            f"model's preprocessing, and {outside.per_kind} each of synthetic "
            + ", ".join(SYNTHETIC_KINDS)
            + " images (inference.ml.ood.synthetic_images, seed "
            + str(SEED)
            + ")"
        ),
        **report,
    }
    card["input_check"] = entry
    cards.write_card(card, model_dir)
    return entry


def measure_input_check(
    check, twin, val_batch: np.ndarray, recipe: Recipe, outside: OutsideImages, *, val_colourfulness
) -> dict:
    """AUROC and refusal rates of a fitted check: own validation batch vs the outside images.

    ``val_colourfulness`` is that of the validation images as decoded (the colour rule's input).
    """
    _, val_features = features_and_proba(twin, val_batch)
    in_scores = check.scores(val_features, val_batch, val_colourfulness)
    out_scores = {}
    for name, images in outside.sources(recipe.dataset_path).items():
        batch = to_model_batch(images, input_size=recipe.input_size, color_mode=recipe.color_mode, resize=recipe.resize)
        _, feats = features_and_proba(twin, batch)
        out_scores[name] = check.scores(feats, batch, [colourfulness(image) for image in images])
    same_route = tuple(
        f"dataset:{other.dataset_path}"
        for other in RECIPES.values()
        if other.dataset_path != recipe.dataset_path and _same_route(other, recipe)
    )
    return {"not_pooled": list(same_route), **check_report(check, in_scores, out_scores, not_pooled=same_route)}


def remeasure_input_check(model_dir: str | Path, *, datasets_root: str | Path, outside: OutsideImages) -> dict:
    """Measure the shipped check (sha256-pinned by the card) again, without refitting it."""
    model_dir = Path(model_dir)
    bundle = load_bundle(model_dir)
    entry = bundle.card["input_check"]
    check = InputCheck.load(model_dir / entry["file"], sha256=entry["sha256"])
    recipe = recipe_for_card(bundle.card)
    images = validation_images(
        recipe,
        Path(datasets_root),
        limit=None,
        seed=SEED,
        split_seed=int(bundle.card["seed"]),
        validation_files=bundle.card["dataset"].get("validation_files"),
    )
    batch = to_model_batch(images, input_size=recipe.input_size, color_mode=recipe.color_mode, resize=recipe.resize)
    colours = [colourfulness(image) for image in images]
    return measure_input_check(check, feature_model(bundle.model), batch, recipe, outside, val_colourfulness=colours)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the input check of shipped models.")
    parser.add_argument("model_dirs", nargs="+")
    parser.add_argument("--datasets-root")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    root = Path(args.datasets_root) if args.datasets_root else default_datasets_root()
    outside = OutsideImages(root)
    for directory in args.model_dirs:
        entry = build_input_check(directory, datasets_root=root, outside=outside, limit=args.limit)
        summary = {k: entry[k] for k in ("auroc", "own_validation_refused", "other_refused", "threshold")}
        worst = min(entry["per_source"].items(), key=lambda kv: kv[1]["auroc"])
        summary["worst_source"] = {worst[0]: worst[1]}
        sys.stdout.write(json.dumps({"model": str(directory), **summary}) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
