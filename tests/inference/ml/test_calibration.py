import numpy as np
import pytest

from inference.ml import calibration, metrics


def _overconfident(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(size=(n, 3)) * 1.5
    p_true = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p_true])
    # Model is the right ranking but three times too sharp.
    sharp = np.exp(true_logits * 3) / np.exp(true_logits * 3).sum(1, keepdims=True)
    return sharp, y


def test_temperature_scaling_lowers_nll_and_ece():
    proba, y = _overconfident()
    t = calibration.fit_temperature(proba, y)
    assert t == pytest.approx(3.0, rel=0.15)
    scaled = calibration.apply_temperature(proba, t)
    assert metrics.negative_log_likelihood(y, scaled) < metrics.negative_log_likelihood(y, proba)
    assert metrics.expected_calibration_error(y, scaled) < 0.5 * metrics.expected_calibration_error(y, proba)
    # Ranking (and hence accuracy) is unchanged.
    np.testing.assert_array_equal(scaled.argmax(1), proba.argmax(1))


def test_apply_temperature_properties():
    p = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(calibration.apply_temperature(p, 1.0), p, atol=1e-9)
    out = calibration.apply_temperature(p, 2.0)
    np.testing.assert_allclose(out.sum(1), 1.0)
    assert out[0, 0] < 0.7  # softened
    with pytest.raises(ValueError):
        calibration.apply_temperature(p, 0.0)
