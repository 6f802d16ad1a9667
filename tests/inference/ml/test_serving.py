import numpy as np
import pytest

from inference.ml import serving
from inference.ml.architectures import GRADCAM_LAYER, build_model


@pytest.fixture(scope="module")
def small_model():
    import keras  # noqa: PLC0415 - TensorFlow takes seconds to load; only these fixtures pay for it

    keras.utils.set_random_seed(0)
    return build_model(
        "resnet",
        input_shape=(20, 30, 1),
        num_classes=3,
        stem_filters=8,
        widths=(8, 16),
        blocks=(1, 1),
        dropout=0.0,
    )


@pytest.fixture(scope="module")
def foreign_model():
    """A plain Sequential CNN ending in Dense(softmax), as other teams might ship."""
    # TensorFlow takes seconds to load; only these fixtures pay for it.
    import keras  # noqa: PLC0415
    from keras import layers  # noqa: PLC0415

    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input(shape=(16, 16, 3)),
            layers.Rescaling(1 / 255.0),
            layers.Conv2D(8, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(8, 3, activation="relu", padding="same", name="last_conv"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(2, activation="softmax"),
        ]
    )


def test_predict_proba_rows_sum_to_one(small_model):
    batch = np.random.default_rng(0).uniform(0, 255, (5, 20, 30, 1)).astype(np.float32)
    p1 = serving.predict_proba(small_model, batch, temperature=1.0)
    p2 = serving.predict_proba(small_model, batch, temperature=2.5)
    assert p1.shape == (5, 3)
    np.testing.assert_allclose(p1.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(p2.sum(1), 1.0, atol=1e-6)
    assert p2.max(1).mean() <= p1.max(1).mean() + 1e-9
    with pytest.raises(ValueError):
        serving.predict_proba(small_model, np.zeros((1, 28, 28, 1), np.float32), temperature=1.0)


def test_gradcam_shape_and_range(small_model):
    batch = np.random.default_rng(1).uniform(0, 255, (4, 20, 30, 1)).astype(np.float32)
    assert serving.find_gradcam_layer(small_model) == GRADCAM_LAYER
    maps = serving.gradcam(small_model, batch, [0, 1, 2, 0])
    assert maps.shape == (4, 20, 30)
    assert maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    same = serving.gradcam(small_model, batch, 1, layer_name="s1b0_out")
    assert same.shape == (4, 20, 30)


def test_gradcam_on_foreign_sequential_model(foreign_model):
    batch = np.random.default_rng(2).uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    assert serving.find_gradcam_layer(foreign_model) == "last_conv"
    maps = serving.gradcam(foreign_model, batch, [1, 0, 1])
    assert maps.shape == (3, 16, 16)
    assert maps.min() >= 0.0 and maps.max() <= 1.0


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_load_model_formats(tmp_path, foreign_model, suffix):
    path = tmp_path / f"model{suffix}"
    foreign_model.save(path)
    loaded = serving.load_model(path)
    batch = np.random.default_rng(3).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(
        serving.predict_proba(loaded, batch, temperature=1.0),
        serving.predict_proba(foreign_model, batch, temperature=1.0),
        atol=1e-5,
    )
    assert serving.gradcam(loaded, batch, 0).shape == (2, 16, 16)


def test_load_model_rejects_unknown_format(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"x")
    with pytest.raises(ValueError):
        serving.load_model(bad)
    with pytest.raises(FileNotFoundError):
        serving.load_model(tmp_path / "missing.keras")


def test_configure_devices_reports_device():
    assert serving.configure_devices() in ("GPU", "CPU")
