"""Train one recipe end to end: data, network, calibration, metrics, model card.

Run from the repository root without Django, e.g.::

    python -m inference.ml.training cxr-pneumonia --output inference/zoo/cxr-pneumonia
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from . import cards
from .architectures import BN_MOMENTUM, GRADCAM_LAYER, LOGITS_LAYER, build_model
from .augment import build_augmentation
from .calibration import REFERENCE_SIZES, apply_temperature, cross_fitted_calibration, fit_temperature
from .datasets import (
    ImageSet,
    filename_groups,
    grouped_stratified_split,
    load_class_folder,
    load_npz,
    metadata_groups,
    near_identical_groups,
    stratified_limit,
    stratified_split,
)
from .metrics import (
    bootstrap_intervals,
    classification_report,
    expected_calibration_error,
    negative_log_likelihood,
)
from .preprocessing import to_model_batch, to_model_input
from .recipes import Recipe, get_recipe
from .serving import raw_proba

logger = logging.getLogger(__name__)

DATASETS_ENV = "MEDPORTAL_DATASETS"
IMBALANCE_RATIO = 1.5


def default_datasets_root() -> Path:
    """``$MEDPORTAL_DATASETS`` or ``<repo>/../shared/datasets``."""
    env = os.environ.get(DATASETS_ENV)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "datasets"


@dataclass
class PreparedData:
    train: ImageSet  # images already at model input geometry, float32 (n, h, w, c)
    val: ImageSet
    validation_method: str
    data_path: Path
    validation_files: list[str] | None = None
    calibration: ImageSet | None = None  # held out of train to fit the temperature
    grouped: bool = False  # validation/calibration carved by whole groups


def _model_batch(images, recipe: Recipe) -> np.ndarray:
    return to_model_batch(images, input_size=recipe.input_size, color_mode=recipe.color_mode, resize=recipe.resize)


def load_data(
    recipe: Recipe,
    *,
    datasets_root: str | Path | None = None,
    data_path: str | Path | None = None,
    limit: int | None = None,
    seed: int | None = None,
) -> PreparedData:
    """Load train/validation for a recipe and bring every image to the model input geometry.

    Images pass through ``preprocessing.to_model_input``, the same function the worker
    uses. ``limit`` keeps a small stratified slice of each split (for smoke tests).
    """
    seed = recipe.seed if seed is None else seed
    if data_path is None:
        root = Path(datasets_root) if datasets_root else default_datasets_root()
        data_path = root / recipe.dataset_path
        if recipe.layout == "npz":
            data_path = data_path / recipe.npz_file
    data_path = Path(data_path)
    if not data_path.exists():
        raise FileNotFoundError(f"{recipe.name}: data not found at {data_path}")
    validation_files = None
    groups = None
    if recipe.layout == "npz":
        if data_path.is_dir():
            data_path = data_path / recipe.npz_file
        train = load_npz(data_path, recipe.train_split, recipe.labels)
        if recipe.val_split is None:
            raise ValueError("npz recipes use the file's own validation split")
        val = load_npz(data_path, recipe.val_split, recipe.labels)
        method = f"official {recipe.val_split!r} split of the npz file; used for early stopping and temperature fitting"
    elif recipe.layout == "folders":
        transform = partial(
            to_model_input,
            input_size=recipe.input_size,
            color_mode=recipe.color_mode,
            resize=recipe.resize,
        )
        train = load_class_folder(
            data_path / recipe.train_split, transform=transform, class_names=recipe.labels, limit=limit, seed=seed
        )
        if recipe.val_split is not None:
            val = load_class_folder(
                data_path / recipe.val_split, transform=transform, class_names=recipe.labels, limit=limit, seed=seed
            )
            method = f"the data set's own {recipe.val_split}/ folder; used for early stopping and temperature fitting"
            if recipe.group_metadata:
                groups = metadata_groups(train.files, data_path / recipe.group_metadata, recipe.group_column)
            elif recipe.group_filename:
                groups = filename_groups(train.files, recipe.group_filename)
            elif recipe.group_near_identical:
                groups = near_identical_groups(train.images, train.labels)
        else:
            if recipe.group_near_identical:
                groups = near_identical_groups(train.images, train.labels)
                keep, held = grouped_stratified_split(train.labels, groups, fraction=recipe.val_fraction, seed=seed)
                method = (
                    f"{recipe.val_fraction:.0%} per class carved from {recipe.train_split}/ by "
                    f"whole groups of near-identical images ({len(np.unique(groups))} groups "
                    f"of {len(groups)} images: same-class 32x32 thumbnails correlating above "
                    "0.97, datasets.near_identical_groups), so adjacent slices of one scan never "
                    "sit on both sides; groups drawn by numpy.random.default_rng"
                    f"({seed}) (datasets.grouped_stratified_split); the chosen files are listed "
                    "in dataset.validation_files; used for early stopping and temperature fitting"
                )
            else:
                keep, held = stratified_split(train.labels, fraction=recipe.val_fraction, seed=seed)
                method = (
                    f"stratified {recipe.val_fraction:.0%} per class carved from "
                    f"{recipe.train_split}/ by numpy.random.default_rng({seed}).permutation over "
                    "the sorted file list of each class (datasets.stratified_split); the chosen "
                    "files are listed in dataset.validation_files; used for early stopping and "
                    "temperature fitting"
                )
            val, train = train.subset(held), train.subset(keep)
            if groups is not None:
                groups = groups[keep]  # now aligned with train
            validation_files = list(val.files)
    else:
        raise ValueError(f"unknown layout {recipe.layout!r}")
    if limit:
        kept = stratified_limit(train.labels, limit, seed=seed)
        train = train.subset(kept)
        groups = groups[kept] if groups is not None else None
        val = val.subset(stratified_limit(val.labels, limit, seed=seed))
    calibration = None
    if recipe.calibration_fraction:
        # A different seed from the validation carve-out, so the two never coincide.
        if groups is not None:
            keep, held = grouped_stratified_split(
                train.labels, groups, fraction=recipe.calibration_fraction, seed=seed + 1
            )
        else:
            keep, held = stratified_split(train.labels, fraction=recipe.calibration_fraction, seed=seed + 1)
        calibration, train = train.subset(held), train.subset(keep)
        method = method.replace("early stopping and temperature fitting", "reporting only")
        method += (
            f"; the temperature is fitted on {recipe.calibration_fraction:.0%} per class held out "
            "of training" + (" by whole groups" if groups is not None else "") + " and used for nothing else"
        )
    if recipe.calibration_folds:
        method = method.replace("reporting only", "reporting and, together with any calibration part, the temperature")
        method = method.replace("and used for nothing else", "and on the validation split")
        method += (
            "; accuracy, AUC and the confusion matrix do not depend on the temperature, but the ECE and "
            "log-loss here were measured on images the temperature was fitted on: metrics.cross_fitted "
            f"gives them on unseen images ({recipe.calibration_folds}-fold cross-fitting)"
        )
    sets = [s for s in (train, val, calibration) if s is not None]
    for part in sets:
        if recipe.layout == "npz":
            part.images = _model_batch(part.images, recipe)
        else:
            # Folder images went through to_model_input while loading.
            part.images = np.asarray(part.images, dtype=np.float32)
    return PreparedData(train, val, method, data_path, validation_files, calibration, grouped=groups is not None)


def mixup(alpha: float, n_classes: int, *, seed: int):
    """A tf.data map over (images, integer labels) batches: each image blended with another of its
    batch, ``lam * x + (1 - lam) * x[perm]`` with ``lam ~ Beta(alpha, alpha)`` per image, and its
    one-hot label blended by the same weight."""
    import tensorflow as tf  # noqa: PLC0415 - TensorFlow: loaded only once a model is used

    generator = tf.random.Generator.from_seed(seed)

    def blend(images, labels):
        n = tf.shape(images)[0]
        # Beta(a, a) as G1 / (G1 + G2) of two Gamma(a, 1) draws: tf.random has no Beta.
        seeds = generator.make_seeds(3)
        first = tf.random.stateless_gamma([n], seed=seeds[:, 0], alpha=alpha)
        second = tf.random.stateless_gamma([n], seed=seeds[:, 1], alpha=alpha)
        lam = first / (first + second)
        partner = tf.argsort(tf.random.stateless_uniform([n], seed=seeds[:, 2]))
        one_hot = tf.one_hot(labels, n_classes)
        weight = lam[:, None, None, None]
        mixed_x = weight * images + (1.0 - weight) * tf.gather(images, partner)
        mixed_y = lam[:, None] * one_hot + (1.0 - lam[:, None]) * tf.gather(one_hot, partner)
        return mixed_x, mixed_y

    return blend


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float] | None:
    """Balanced weights n / (k * n_c) when the largest class outnumbers the smallest 1.5:1."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts[counts > 0]
    if present.max() / present.min() <= IMBALANCE_RATIO:
        return None
    weights = len(labels) / (n_classes * np.maximum(counts, 1.0))
    return {i: round(float(w), 4) for i, w in enumerate(weights)}


def _load_earlier_run(model, path: Path, recipe: Recipe) -> dict:
    """Copy an earlier run's averaged weights into ``model``; returns what the card records of that run."""
    import hashlib  # noqa: PLC0415 - only this path hashes files

    import keras  # noqa: PLC0415 - TensorFlow: loaded only once a model is used

    earlier = json.loads((path / cards.CARD_FILENAME).read_text())
    same_network = earlier["recipe"].get("arch_params") == json.loads(json.dumps(recipe.arch_params))
    if earlier["name"] != recipe.name or list(earlier["input_size"]) != list(recipe.input_size) or not same_network:
        raise ValueError(f"{path} is not a run of {recipe.name} with this network and input size")
    weights_file = path / cards.MODEL_FILENAME
    model.set_weights(keras.models.load_model(weights_file, compile=False).get_weights())
    earlier_shift = earlier["recipe"]["training"].get("prior_correction_added_to_logits")
    if earlier_shift:
        # Back to the weights training produced, so the prior correction is not added twice.
        layer = model.get_layer(LOGITS_LAYER)
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel, (bias - np.asarray(earlier_shift)).astype(bias.dtype)])
    return {
        "weights_sha256": hashlib.sha256(weights_file.read_bytes()).hexdigest(),
        "training_time_s": earlier["training_time_s"],
        "trained_at": earlier["trained_at"],
        "command": earlier["recipe"]["training"].get("command"),
        "training": {k: v for k, v in earlier["recipe"]["training"].items() if k != "command"},
    }


def correct_prior(model, weights: dict[int, float]) -> list[float]:
    """Undo balanced class weighting in the logits layer's bias; returns the shift added.

    Training with weights w_c fits p_w(c|x) proportional to w_c p(c|x), so adding
    -log w_c (up to a constant) to each logit restores the training prevalence.
    """
    layer = model.get_layer(LOGITS_LAYER)
    kernel, bias = layer.get_weights()
    shift = -np.log(np.array([weights[i] for i in range(len(bias))], dtype=np.float64))
    shift -= shift.mean()
    layer.set_weights([kernel, (bias + shift).astype(bias.dtype)])
    return [round(float(v), 6) for v in shift]


def refuse_overwrite(output_dir: Path, recipe: Recipe) -> None:
    """Trained weights are never replaced: ``output_dir`` must not hold a model yet.

    A new version is trained into a fresh directory (with the recipe's version bumped),
    reviewed, then copied into the zoo and registered; the registry keeps the old one.
    """
    card_path = output_dir / cards.CARD_FILENAME
    if not (output_dir / cards.MODEL_FILENAME).exists() and not card_path.exists():
        return
    held = "a trained model"
    if card_path.exists():
        try:
            existing = json.loads(card_path.read_text())
            held = f"{existing.get('name')} {existing.get('version')}"
        except ValueError:
            pass
    raise ValueError(
        f"{output_dir} already holds {held}; train {recipe.name} {recipe.version} into an empty --output "
        "(bump the recipe's version for a new model)"
    )


def set_seeds(seed: int) -> None:
    import keras  # noqa: PLC0415 - TensorFlow: loaded only once a model is used

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)  # python, numpy and the TensorFlow backend


def train_recipe(
    recipe: Recipe | str,
    *,
    output_dir: str | Path,
    datasets_root: str | Path | None = None,
    data_path: str | Path | None = None,
    epochs: int | None = None,
    limit: int | None = None,
    seed: int | None = None,
    verbose: int = 2,
    time_budget_s: float | None = None,
    checkpoint_dir: str | Path | None = None,
    command: str | None = None,
    finish_from: str | Path | None = None,
    init_seed: int | None = None,
) -> dict:
    """Train, calibrate and evaluate a recipe; writes ``model.keras`` + ``card.json``.

    ``finish_from`` takes the averaged weights of an earlier run of the same recipe (its
    output folder) instead of training, and does only the steps after training
    (batch-norm statistics, prior correction, temperature, card); the card keeps that
    run's training record and time.

    ``seed`` fixes the data split (validation, calibration hold-out) and, unless
    ``init_seed`` is given, everything random in training too. ``init_seed`` alone varies
    the initial weights, the shuffling and the augmentation, so several members of a seed
    ensemble share one calibration hold-out that none of them trained on.

    Returns the card. ``epochs``/``limit`` shrink the run for tests; the card records
    the values actually used. Refuses to write over a model of the same name and
    version. With ``time_budget_s`` a weight-averaged recipe compresses its learning-rate
    schedule so that it always completes (and stops) within the budget.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: PLC0415 - TensorFlow: loaded only once a model is used
    import tensorflow as tf  # noqa: PLC0415 - TensorFlow: loaded only once a model is used

    from .averaging import (  # noqa: PLC0415 - imports Keras at its top
        Checkpoint,
        ProgressSchedule,
        WeightAverage,
        recalibrate_batch_norm,
    )

    if isinstance(recipe, str):
        recipe = get_recipe(recipe)
    if epochs is not None:
        recipe = replace(recipe, epochs=int(epochs))
    seed = recipe.seed if seed is None else int(seed)
    init = seed if init_seed is None else int(init_seed)
    output_dir = Path(output_dir)
    refuse_overwrite(output_dir, recipe)
    output_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    data = load_data(recipe, datasets_root=datasets_root, data_path=data_path, limit=limit, seed=seed)
    train, val = data.train, data.val
    n_classes = len(recipe.labels)
    logger.info("%s: %d train / %d val images", recipe.name, len(train), len(val))

    set_seeds(init)
    channels = 1 if recipe.color_mode == "grayscale" else 3
    input_shape = (recipe.input_size[0], recipe.input_size[1], channels)
    model = build_model(
        recipe.architecture,
        input_shape=input_shape,
        num_classes=n_classes,
        name=recipe.name.replace("-", "_"),
        **recipe.arch_params,
    )
    # Augmentation wraps the network only while training, so the saved model is clean.
    augmentation = build_augmentation(recipe.augmentation, seed=init)
    inputs = keras.Input(shape=input_shape, name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    trainer = keras.Model(inputs, model(x), name=f"{model.name}_trainer")

    steps_per_epoch = max(1, int(np.ceil(len(train) / recipe.batch_size)))
    warmup = min(recipe.warmup_epochs, max(recipe.epochs - 1, 0)) * steps_per_epoch
    total = recipe.epochs * steps_per_epoch
    weights = class_weights(train.labels, n_classes) if recipe.class_weighting == "auto" else None
    callbacks: list = []
    averager = None
    if recipe.ema_momentum:
        # Fixed schedule: the learning rate follows a callback (so a time budget can
        # compress it) and the averaged weights of the last step become the model.
        optimizer = keras.optimizers.AdamW(learning_rate=recipe.learning_rate, weight_decay=recipe.weight_decay)
        scheduler = ProgressSchedule(
            peak=recipe.learning_rate, total_steps=total, warmup_steps=warmup, time_budget_s=time_budget_s
        )
        averager = WeightAverage(model, momentum=recipe.ema_momentum)
        callbacks += [scheduler, averager]
        if checkpoint_dir:
            callbacks.append(Checkpoint(model, averager, Path(checkpoint_dir)))
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=recipe.learning_rate / 10.0,
            decay_steps=max(total - warmup, 1),
            alpha=0.01,
            warmup_target=recipe.learning_rate,
            warmup_steps=warmup,
        )
        optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=recipe.weight_decay)
        callbacks.append(
            # Only from mid-schedule on: small, noisy validation sets otherwise stop training
            # (and pick weights) while the learning rate is still at its peak.
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=recipe.patience,
                restore_best_weights=True,
                start_from_epoch=recipe.epochs // 2,
            )
        )
    # Decaying batch-norm scales/shifts and biases only fights the normalisation.
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    if recipe.mixup_alpha:
        # Blended images have blended (soft) labels, so the loss takes one-hot targets.
        loss = keras.losses.CategoricalCrossentropy()
        accuracy = keras.metrics.CategoricalAccuracy(name="acc")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="acc")
    trainer.compile(optimizer=optimizer, loss=loss, metrics=[accuracy])
    train_ds = (
        tf.data.Dataset.from_tensor_slices((train.images, train.labels))
        .shuffle(len(train), seed=init, reshuffle_each_iteration=True)
        .batch(recipe.batch_size)
    )
    val_ds = tf.data.Dataset.from_tensor_slices((val.images, val.labels)).batch(256)
    if recipe.mixup_alpha:
        train_ds = train_ds.map(mixup(recipe.mixup_alpha, n_classes, seed=init))
        val_ds = val_ds.map(lambda x, y: (x, tf.one_hot(y, n_classes)))
    train_ds = train_ds.prefetch(tf.data.AUTOTUNE)
    finished_from = None
    if finish_from is not None:
        finished_from = _load_earlier_run(model, Path(finish_from), recipe)
        history = keras.callbacks.History()
        history.history = {}
    else:
        history = trainer.fit(
            train_ds,
            # A weight-averaged run picks nothing on validation; its per-epoch figures are
            # left out so that nothing can be tuned on them.
            validation_data=None if averager else val_ds,
            epochs=recipe.epochs,
            class_weight=weights,
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline already reshuffles every epoch
            verbose=verbose,
        )
    fit_seconds = time.perf_counter() - started

    epochs_run = len(history.history.get("loss", []))
    recalibrated = 0
    if averager is not None:
        if finished_from is None:
            averager.apply()
        recalibrated = recalibrate_batch_norm(model, train.images, seed=init)
        best_epoch = epochs_run
    else:
        stopper = callbacks[0]
        best_epoch = int(stopper.best_epoch) + 1 if stopper.best_weights is not None else epochs_run

    prior_shift = None
    if recipe.prior_correction and weights:
        prior_shift = correct_prior(model, weights)
    proba = raw_proba(model, val.images)
    cross_fitted = None
    if recipe.calibration_folds:
        pooled = [data.calibration, val] if data.calibration is not None else [val]
        temperature, cross_fitted = cross_fitted_calibration(
            np.concatenate([raw_proba(model, part.images) for part in pooled]),
            np.concatenate([part.labels for part in pooled]),
            recipe.labels,
            folds=recipe.calibration_folds,
            seed=seed,
            sizes=[len(val), sum(len(part) for part in pooled), *REFERENCE_SIZES],
        )
    elif data.calibration is not None:
        temperature = fit_temperature(raw_proba(model, data.calibration.images), data.calibration.labels)
    else:
        temperature = fit_temperature(proba, val.labels)
    report = validation_report(val.labels, proba, temperature, recipe.labels)

    model_path = output_dir / cards.MODEL_FILENAME
    model.save(model_path)
    training_time = time.perf_counter() - started
    if finished_from:
        training_time += finished_from["training_time_s"]

    card = build_card(
        recipe,
        data=data,
        report=report,
        cross_fitted=cross_fitted,
        temperature=temperature,
        parameters=int(model.count_params()),
        training_time_s=training_time,
        seed=seed,
        gradcam_layer=GRADCAM_LAYER if _has_layer(model, GRADCAM_LAYER) else None,
        training={
            "epochs_run": epochs_run,
            "best_epoch": best_epoch,
            "class_weights": weights,
            "fit_seconds": round(fit_seconds, 1),
            "limit": limit,
            **({"init_seed": init} if init != seed else {}),
            **({"time_budget_s": time_budget_s} if time_budget_s else {}),
            **({"prior_correction_added_to_logits": prior_shift} if prior_shift else {}),
            **({"batch_norm_recalibrated_on_train_images": recalibrated} if recalibrated else {}),
            **({"finished_from": finished_from} if finished_from else {}),
            **({"final_progress": round(scheduler.progress, 4)} if averager else {}),
            **({"command": command} if command else {}),
        },
    )
    cards.write_card(card, output_dir)
    return card


def validation_report(labels: np.ndarray, proba: np.ndarray, temperature: float, label_names) -> dict:
    """The card's ``metrics.validation``: figures after the temperature, ECE and log-loss before and
    after it, and 95 % bootstrap intervals."""
    calibrated = _apply_t(proba, temperature)
    report = classification_report(labels, calibrated, list(label_names))
    report["ece_before"] = round(expected_calibration_error(labels, proba), 6)
    report["ece_after"] = round(expected_calibration_error(labels, calibrated), 6)
    report["nll_before"] = round(negative_log_likelihood(labels, proba), 6)
    report["nll_after"] = round(negative_log_likelihood(labels, calibrated), 6)
    report["ci95"] = bootstrap_intervals(labels, calibrated, n_resamples=1000)
    return report


def _apply_t(proba: np.ndarray, temperature: float) -> np.ndarray:
    return apply_temperature(proba, temperature)


def _has_layer(model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def build_card(
    recipe: Recipe,
    *,
    data: PreparedData,
    report: dict,
    cross_fitted: dict | None = None,
    temperature: float,
    parameters: int,
    training_time_s: float,
    seed: int,
    gradcam_layer: str | None,
    training: dict,
) -> dict:
    import keras  # noqa: PLC0415 - TensorFlow: loaded only once a model is used
    import tensorflow as tf  # noqa: PLC0415 - TensorFlow: loaded only once a model is used

    dataset = {
        "name": recipe.dataset_name,
        "path": recipe.dataset_path,
        "source": recipe.source,
        "licence": recipe.licence,
        "citation": recipe.citation,
        "splits": {
            "train": len(data.train),
            "val": len(data.val),
            **({"calibration": len(data.calibration)} if data.calibration is not None else {}),
        },
        "class_counts": {
            "train": dict(zip(recipe.labels, data.train.class_counts(), strict=True)),
            "val": dict(zip(recipe.labels, data.val.class_counts(), strict=True)),
        },
        "validation_method": data.validation_method,
        "temperature_fitted_on": (
            f"{len(data.calibration)} training images held out of training "
            f"({recipe.calibration_fraction:.0%} per class, "
            f"{'grouped_stratified_split' if data.grouped else 'stratified_split'} seed {seed + 1})"
            if data.calibration is not None
            else "the validation split"
        ),
    }
    if cross_fitted is not None:
        dataset["temperature_fitted_on"] = (
            f"{cross_fitted['n']} images: "
            + (f"{dataset['temperature_fitted_on']} and " if data.calibration is not None else "")
            + f"the {len(data.val)} validation images"
        )
    if data.validation_files is not None:
        dataset["validation_files"] = data.validation_files
    return {
        "name": recipe.name,
        "version": recipe.version,
        "display_name": recipe.display_name,
        "task": "classification",
        "labels": list(recipe.labels),
        "normal_labels": list(recipe.normal_labels) if recipe.normal_labels is not None else None,
        "input_size": [int(recipe.input_size[0]), int(recipe.input_size[1])],
        "color_mode": recipe.color_mode,
        "preprocessing": {
            "resize": recipe.resize,
            "scaling": "inside model (Rescaling 1/255)",
            "input_dtype": "float32, values 0..255",
            "function": "inference.ml.preprocessing.to_model_input",
            "downsampling": "cv2 INTER_AREA (bilinear when enlarging)",
            "grayscale_conversion": "ITU-R BT.601 luma",
        },
        "modalities": list(recipe.modalities),
        "body_part": recipe.body_part,
        "procedure": recipe.procedure,
        "temperature": round(float(temperature), 6),
        "gradcam_layer": gradcam_layer,
        "dataset": dataset,
        "intended_use": recipe.intended_use,
        "limitations": recipe.limitations,
        "not_for": recipe.not_for,
        "metrics": {"validation": report, **({"cross_fitted": cross_fitted} if cross_fitted is not None else {})},
        "published_benchmark": dict(recipe.published_benchmark),
        "development": list(recipe.development),
        "parameters": parameters,
        "training_time_s": round(float(training_time_s), 1),
        "trained_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "framework": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "seed": seed,
        "recipe": {**recipe.hyperparameters(), "bn_momentum": BN_MOMENTUM, "training": training},
    }


def portable_command(args: list[str], module: str = "inference.ml.training") -> str:
    """The training command as the card records it: an absolute path (this machine's) becomes
    its last component, so the card reads the same wherever the model was trained."""
    shown = [Path(a).name if Path(a).is_absolute() else a for a in args]
    return f"python -m {module} " + " ".join(shown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train a MedPortal model recipe.")
    parser.add_argument("recipe")
    parser.add_argument("--output", required=True)
    parser.add_argument("--datasets-root")
    parser.add_argument("--data")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--seed", type=int, help="Data split seed (and training seed unless --init-seed).")
    parser.add_argument("--init-seed", type=int, help="Training seed only: weights, shuffling, augmentation.")
    parser.add_argument("--time-budget-min", type=float, help="Finish the schedule within this many minutes.")
    parser.add_argument("--checkpoint-dir", help="Save the averaged model and a progress line after each epoch.")
    parser.add_argument(
        "--finish-from",
        help="An earlier run's output folder: take its averaged weights and redo only the steps after training.",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    card = train_recipe(
        args.recipe,
        output_dir=args.output,
        datasets_root=args.datasets_root,
        data_path=args.data,
        epochs=args.epochs,
        limit=args.limit,
        seed=args.seed,
        time_budget_s=args.time_budget_min * 60 if args.time_budget_min else None,
        checkpoint_dir=args.checkpoint_dir,
        finish_from=args.finish_from,
        init_seed=args.init_seed,
        command=portable_command(argv if argv is not None else sys.argv[1:]),
    )
    summary = {k: v for k, v in card["metrics"]["validation"].items() if k != "per_class"}
    sys.stdout.write(json.dumps({"name": card["name"], "temperature": card["temperature"], **summary}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
