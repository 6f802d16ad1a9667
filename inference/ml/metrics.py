"""Classification metrics in plain numpy (no scikit-learn dependency)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    y_true = np.asarray(y_true)
    return float(np.mean(y_true == np.asarray(y_pred))) if len(y_true) else float("nan")


def sensitivity_specificity(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class one-vs-rest sensitivity (recall) and specificity; NaN where undefined."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    tp = np.diag(cm)
    fn = cm.sum(axis=1) - tp
    fp = cm.sum(axis=0) - tp
    tn = total - tp - fn - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        spec = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
    return sens, spec


def balanced_accuracy(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> float:
    """Mean recall over the classes present in ``y_true``."""
    sens, _ = sensitivity_specificity(confusion_matrix(y_true, y_pred, n_classes))
    present = ~np.isnan(sens)
    return float(np.mean(sens[present])) if present.any() else float("nan")


def binary_auc(y_true: Sequence[int], scores: Sequence[float]) -> float:
    """ROC AUC via the Mann-Whitney U statistic, ties counted as one half."""
    y_true = np.asarray(y_true).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(y_true.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Average ranks over runs of equal scores so ties contribute 0.5.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[y_true].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def macro_auc(y_true: Sequence[int], proba: np.ndarray) -> float:
    """Binary: ordinary AUC of the positive (index 1) class. Multi-class: mean one-vs-rest AUC."""
    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = proba.shape[1]
    if n_classes == 2:
        return binary_auc(y_true == 1, proba[:, 1])
    aucs = [binary_auc(y_true == c, proba[:, c]) for c in range(n_classes)]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def expected_calibration_error(y_true: Sequence[int], proba: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with ``n_bins`` equal-width confidence bins (Guo et al., 2017)."""
    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=np.float64)
    if len(y_true) == 0:
        return float("nan")
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bins are (lo, hi]; confidence 0 cannot occur for a top label, so nothing is lost.
    bin_ids = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bin_ids == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def negative_log_likelihood(y_true: Sequence[int], proba: np.ndarray) -> float:
    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=np.float64)
    picked = np.clip(proba[np.arange(len(y_true)), y_true], 1e-12, 1.0)
    return float(-np.mean(np.log(picked)))


def _clean(value: float) -> float | None:
    return None if value is None or np.isnan(value) else round(float(value), 6)


def classification_report(y_true: Sequence[int], proba: np.ndarray, labels: Sequence[str]) -> dict:
    """JSON-ready summary: accuracy, balanced accuracy, macro AUC, per-class sens/spec, CM, n."""
    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = len(labels)
    if proba.ndim != 2 or proba.shape[1] != n_classes:
        raise ValueError(f"probabilities of shape {proba.shape} do not fit {n_classes} labels")
    y_pred = proba.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, n_classes)
    sens, spec = sensitivity_specificity(cm)
    return {
        "accuracy": _clean(accuracy(y_true, y_pred)),
        "balanced_accuracy": _clean(balanced_accuracy(y_true, y_pred, n_classes)),
        "macro_auc": _clean(macro_auc(y_true, proba)),
        "per_class": {
            label: {"sensitivity": _clean(sens[i]), "specificity": _clean(spec[i])} for i, label in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
        "n": int(len(y_true)),
    }


BOOTSTRAP_METRICS = ("accuracy", "balanced_accuracy", "macro_auc", "ece")


def bootstrap_intervals(
    y_true: Sequence[int], proba: np.ndarray, *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float] | None]:
    """Percentile bootstrap intervals (resampling images with replacement) for the headline metrics.

    With a few hundred validation images these intervals are several points wide; they
    say how far apart two models must be before the difference means anything.
    """
    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = proba.shape[1]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in BOOTSTRAP_METRICS}
    for _ in range(n_resamples):
        idx = rng.integers(0, len(y_true), len(y_true))
        y, p = y_true[idx], proba[idx]
        pred = p.argmax(axis=1)
        draws["accuracy"].append(accuracy(y, pred))
        draws["balanced_accuracy"].append(balanced_accuracy(y, pred, n_classes))
        draws["macro_auc"].append(macro_auc(y, p))
        draws["ece"].append(expected_calibration_error(y, p))
    tail = (1.0 - level) / 2.0 * 100.0
    out: dict[str, list[float] | None] = {}
    for key, values in draws.items():
        values_arr = np.asarray(values, dtype=np.float64)
        values_arr = values_arr[~np.isnan(values_arr)]
        out[key] = (
            [round(float(np.percentile(values_arr, tail)), 4), round(float(np.percentile(values_arr, 100 - tail)), 4)]
            if len(values_arr)
            else None
        )
    return out
