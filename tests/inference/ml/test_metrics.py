import numpy as np
import pytest

from inference.ml import metrics


def test_confusion_matrix_and_accuracy():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 1, 0, 1, 1, 0]
    cm = metrics.confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(4 / 6)


def test_balanced_accuracy_and_sens_spec_by_hand():
    # Class 0: 3 items, 2 right; class 1: 2 items, 2 right; class 2: 1 item, 0 right.
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 1, 0, 1, 1, 0]
    assert metrics.balanced_accuracy(y_true, y_pred, 3) == pytest.approx((2 / 3 + 1 + 0) / 3)
    sens, spec = metrics.sensitivity_specificity(metrics.confusion_matrix(y_true, y_pred, 3))
    np.testing.assert_allclose(sens, [2 / 3, 1.0, 0.0])
    # Class 0 negatives: items 3,4,5 -> item 5 predicted 0 (FP) -> spec 2/3.
    # Class 1 negatives: items 0,1,2,5 -> item 1 predicted 1 (FP) -> spec 3/4.
    # Class 2 negatives: items 0..4 -> none predicted 2 -> spec 1.
    np.testing.assert_allclose(spec, [2 / 3, 3 / 4, 1.0])


def test_binary_auc_hand_computed_with_ties():
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    # Positive/negative pairs: (0.35 > 0.1), (0.35 < 0.4), (0.8 > 0.1), (0.8 > 0.4) -> 3/4.
    assert metrics.binary_auc(y, s) == pytest.approx(0.75)
    # A tie counts one half: pairs (0.5 vs 0.5) = 0.5, (0.9 vs 0.5) = 1 -> 0.75.
    assert metrics.binary_auc([0, 1, 1], [0.5, 0.5, 0.9]) == pytest.approx(0.75)
    assert np.isnan(metrics.binary_auc([1, 1], [0.2, 0.3]))


def test_macro_auc_binary_uses_positive_column_and_multiclass_averages():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    assert metrics.macro_auc([0, 0, 1, 1], proba) == pytest.approx(0.75)
    proba3 = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.5, 0.3, 0.2]])
    y3 = [0, 1, 2, 0]
    # Each class is perfectly separated one-vs-rest.
    assert metrics.macro_auc(y3, proba3) == pytest.approx(1.0)


def test_ece_hand_computed():
    # Two predictions at confidence 0.9 (one right) and two at 0.6 (both right):
    # |0.5 - 0.9| * 0.5 + |1.0 - 0.6| * 0.5 = 0.4.
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    y = [0, 1, 1, 1]
    assert metrics.expected_calibration_error(y, proba) == pytest.approx(0.4)
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert metrics.expected_calibration_error([0, 1], perfect) == pytest.approx(0.0)


def test_classification_report_shape():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    report = metrics.classification_report([0, 1, 1], proba, ["normal", "pneumonia"])
    assert report["n"] == 3
    assert report["accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    assert report["per_class"]["pneumonia"]["sensitivity"] == pytest.approx(0.5)
    assert report["per_class"]["normal"]["specificity"] == pytest.approx(0.5)
    assert report["confusion_matrix"] == [[1, 0], [1, 1]]
    with pytest.raises(ValueError):
        metrics.classification_report([0], np.array([[1.0, 0.0]]), ["a", "b", "c"])
