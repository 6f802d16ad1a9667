"""Temperature scaling (Guo et al., 2017) on top of a model's softmax output.

Serving applies ``softmax(log(p) / T)``: since ``log(p)`` equals the logits up to a
per-row constant, this is exactly temperature scaling of the logits, and it works
for any model that ends in a softmax, including models imported from elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .metrics import (
    bootstrap_intervals,
    classification_report,
    expected_calibration_error,
    negative_log_likelihood,
)

_EPS = 1e-12
# Besides the sizes of a model's own data: test portions of a few hundred images, and a thousand.
REFERENCE_SIZES = (400, 1000)
ECE_TARGET = 0.05
# Other assignments of the images to folds: on a few hundred images the ECE of one
# assignment is itself a draw, so the card gives its spread too.
FOLD_DRAWS = 50


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale softmax probabilities by a temperature; rows still sum to 1."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    proba = np.asarray(proba, dtype=np.float64)
    logits = np.log(np.clip(proba, _EPS, 1.0)) / float(temperature)
    logits -= logits.max(axis=-1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=-1, keepdims=True)


def _nll(proba: np.ndarray, y_true: np.ndarray, temperature: float) -> float:
    scaled = apply_temperature(proba, temperature)
    return float(-np.mean(np.log(np.clip(scaled[np.arange(len(y_true)), y_true], _EPS, 1.0))))


def fit_temperature(
    proba: np.ndarray,
    y_true: Sequence[int],
    *,
    bounds: tuple[float, float] = (0.05, 20.0),
) -> float:
    """Temperature minimising the validation NLL.

    NLL is convex in 1/T, so a coarse log-spaced grid followed by golden-section
    refinement around the best grid point finds the optimum without scipy.
    """
    proba = np.asarray(proba, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=int)
    if len(y_true) == 0:
        return 1.0
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    grid = np.linspace(lo, hi, 61)
    losses = [_nll(proba, y_true, float(np.exp(g))) for g in grid]
    best = int(np.argmin(losses))
    a = grid[max(best - 1, 0)]
    b = grid[min(best + 1, len(grid) - 1)]
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    for _ in range(60):
        if _nll(proba, y_true, float(np.exp(c))) < _nll(proba, y_true, float(np.exp(d))):
            b = d
        else:
            a = c
        c, d = b - ratio * (b - a), a + ratio * (b - a)
    return float(np.exp((a + b) / 2.0))


def stratified_folds(y_true: Sequence[int], *, folds: int, seed: int) -> np.ndarray:
    """A fold index per image: each class shuffled by ``numpy.random.default_rng(seed)`` and dealt round."""
    y_true = np.asarray(y_true, dtype=int)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y_true), dtype=int)
    for c in np.unique(y_true):
        members = np.flatnonzero(y_true == c)
        fold[members[rng.permutation(len(members))]] = np.arange(len(members)) % folds
    return fold


def cross_fit_temperature(
    proba: np.ndarray, y_true: Sequence[int], *, folds: int, seed: int
) -> tuple[np.ndarray, list[float]]:
    """Each fold's probabilities scaled by a temperature fitted on the other folds only.

    The pooled result is what a temperature fitted on this much data does on images it
    has not seen, so its ECE and log-loss can be reported for a temperature that is
    then fitted on all of them.
    """
    proba = np.asarray(proba, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=int)
    fold = stratified_folds(y_true, folds=folds, seed=seed)
    out = np.empty_like(proba)
    temperatures = []
    for k in range(folds):
        held = fold == k
        temperature = fit_temperature(proba[~held], y_true[~held])
        out[held] = apply_temperature(proba[held], temperature)
        temperatures.append(temperature)
    return out, temperatures


def ece_noise_floor(proba: np.ndarray, *, n: int, draws: int = 2000, seed: int = 0, n_bins: int = 15) -> dict:
    """15-bin ECE that a perfectly calibrated model with these probabilities shows on ``n`` images.

    Each draw resamples ``n`` rows and labels each from its own probabilities, so the model
    is calibrated by construction and every bit of the ECE is binning noise. A measured ECE
    within this range says nothing against the model; a target below it cannot be shown on
    ``n`` images.
    """
    proba = np.asarray(proba, dtype=np.float64)
    rng = np.random.default_rng(seed)
    values = np.empty(draws)
    for i in range(draws):
        rows = proba[rng.integers(0, len(proba), n)]
        cumulative = np.cumsum(rows, axis=1)
        labels = np.minimum((rng.random((n, 1)) > cumulative).sum(axis=1), proba.shape[1] - 1)
        values[i] = expected_calibration_error(labels, rows, n_bins=n_bins)
    return {
        "mean": round(float(values.mean()), 4),
        "range95": [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])],
        "share_below_target": round(float(np.mean(values < ECE_TARGET)), 4),
    }


def cross_fitted_calibration(
    proba: np.ndarray, y_true: Sequence[int], labels: Sequence[str], *, folds: int, seed: int, sizes: Sequence[int]
) -> tuple[float, dict]:
    """The temperature fitted on all of ``proba``, and the card's account of it.

    The account holds the figures of ``cross_fit_temperature`` (so no image is scored by a
    temperature that saw it), with 95 % bootstrap intervals, next to the uncalibrated
    figures; the spread of ECE and log-loss over ``FOLD_DRAWS`` assignments to folds
    (seeds ``seed``, ``seed + 1``, ...); and the ECE noise floor of the shipped
    probabilities at each of ``sizes``.
    """
    proba = np.asarray(proba, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=int)
    temperature = fit_temperature(proba, y_true)
    unseen, fold_temperatures = cross_fit_temperature(proba, y_true, folds=folds, seed=seed)
    draws = [unseen] + [
        cross_fit_temperature(proba, y_true, folds=folds, seed=seed + i)[0] for i in range(1, FOLD_DRAWS)
    ]
    draw_ece = np.array([expected_calibration_error(y_true, p) for p in draws])
    draw_loss = np.array([negative_log_likelihood(y_true, p) for p in draws])
    report = classification_report(y_true, unseen, list(labels))
    shipped = apply_temperature(proba, temperature)
    account = {
        "n": int(len(y_true)),
        "folds": int(folds),
        "fold_seed": int(seed),
        "fold_temperatures": [round(float(t), 6) for t in fold_temperatures],
        "accuracy": report["accuracy"],
        "balanced_accuracy": report["balanced_accuracy"],
        "macro_auc": report["macro_auc"],
        "ece": round(expected_calibration_error(y_true, unseen), 6),
        "log_loss": round(negative_log_likelihood(y_true, unseen), 6),
        "ece_uncalibrated": round(expected_calibration_error(y_true, proba), 6),
        "log_loss_uncalibrated": round(negative_log_likelihood(y_true, proba), 6),
        "ci95": bootstrap_intervals(y_true, unseen, n_resamples=1000),
        "over_fold_draws": {
            "draws": FOLD_DRAWS,
            "ece_mean": round(float(draw_ece.mean()), 6),
            "ece_range": [round(float(draw_ece.min()), 6), round(float(draw_ece.max()), 6)],
            "log_loss_mean": round(float(draw_loss.mean()), 6),
            "log_loss_range": [round(float(draw_loss.min()), 6), round(float(draw_loss.max()), 6)],
        },
        "ece_target": ECE_TARGET,
        "ece_noise_floor": {str(n): ece_noise_floor(shipped, n=int(n)) for n in sorted(set(sizes))},
    }
    return temperature, account
