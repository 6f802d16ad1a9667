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


def test_stratified_folds_deal_every_class_evenly_over_the_folds():
    y = np.array([0] * 23 + [1] * 7 + [2] * 5)
    fold = calibration.stratified_folds(y, folds=5, seed=3)
    for c in range(3):
        counts = np.bincount(fold[y == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(fold, calibration.stratified_folds(y, folds=5, seed=3))
    assert not np.array_equal(fold, calibration.stratified_folds(y, folds=5, seed=4))


def test_cross_fitting_scores_each_fold_with_a_temperature_that_never_saw_it():
    proba, y = _overconfident(n=600)
    unseen, temperatures = calibration.cross_fit_temperature(proba, y, folds=4, seed=0)

    fold = calibration.stratified_folds(y, folds=4, seed=0)
    for k, temperature in enumerate(temperatures):
        assert temperature == pytest.approx(calibration.fit_temperature(proba[fold != k], y[fold != k]))
        np.testing.assert_allclose(unseen[fold == k], calibration.apply_temperature(proba[fold == k], temperature))
        assert temperature == pytest.approx(3.0, rel=0.25)
    assert metrics.negative_log_likelihood(y, unseen) < metrics.negative_log_likelihood(y, proba)


def test_ece_noise_floor_is_what_a_calibrated_model_shows_and_shrinks_with_more_images():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(500, 5))
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)

    small = calibration.ece_noise_floor(proba, n=100, draws=400)
    large = calibration.ece_noise_floor(proba, n=2000, draws=200)

    assert small["range95"][0] < small["mean"] < small["range95"][1]
    assert large["mean"] < small["mean"] / 3  # about 1/sqrt(n)
    assert small["share_below_target"] < large["share_below_target"]
    # Labels drawn from the probabilities themselves: their ECE lands inside the range.
    y = np.array([rng.choice(5, p=row) for row in proba[:100]])
    assert small["range95"][0] <= metrics.expected_calibration_error(y, proba[:100]) <= small["range95"][1]


def test_cross_fitted_calibration_ships_the_temperature_fitted_on_everything():
    proba, y = _overconfident(n=300)
    temperature, account = calibration.cross_fitted_calibration(
        proba, y, ["a", "b", "c"], folds=5, seed=7, sizes=[100, 300, 100]
    )

    assert temperature == pytest.approx(calibration.fit_temperature(proba, y))
    assert account["n"] == 300 and account["folds"] == 5 and len(account["fold_temperatures"]) == 5
    assert account["log_loss"] < account["log_loss_uncalibrated"]
    assert account["ece"] < account["ece_uncalibrated"]
    draws = account["over_fold_draws"]
    assert draws["ece_range"][0] <= account["ece"] <= draws["ece_range"][1]
    assert draws["ece_range"][0] <= draws["ece_mean"] <= draws["ece_range"][1]
    assert list(account["ece_noise_floor"]) == ["100", "300"]
