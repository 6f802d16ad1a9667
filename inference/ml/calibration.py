"""Temperature scaling (Guo et al., 2017) on top of a model's softmax output.

Serving applies ``softmax(log(p) / T)``: since ``log(p)`` equals the logits up to a
per-row constant, this is exactly temperature scaling of the logits, and it works
for any model that ends in a softmax, including models imported from elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_EPS = 1e-12


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
