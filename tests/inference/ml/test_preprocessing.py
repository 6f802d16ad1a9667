import numpy as np
import pytest

from inference.ml import preprocessing as pp


def test_grayscale_input_to_grayscale_and_rgb():
    img = np.arange(40 * 60, dtype=np.uint32).reshape(40, 60).astype(np.uint8)
    gray = pp.to_model_input(img, input_size=(28, 28), color_mode="grayscale")
    assert gray.shape == (28, 28, 1) and gray.dtype == np.float32
    assert gray.min() >= 0.0 and gray.max() <= 255.0
    rgb = pp.to_model_input(img, input_size=(32, 16), color_mode="rgb")
    assert rgb.shape == (32, 16, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_rgb_input_to_grayscale_uses_luma():
    img = np.zeros((10, 10, 3), dtype=np.uint8)
    img[..., 1] = 200  # pure green
    gray = pp.to_model_input(img, input_size=(10, 10), color_mode="grayscale")
    # BT.601: 0.587 * 200 = 117.4
    assert gray.shape == (10, 10, 1)
    assert abs(float(gray.mean()) - 117.4) < 1.0


def test_values_stay_in_uint8_range_and_no_scaling():
    img = np.full((50, 50), 255, dtype=np.uint8)
    out = pp.to_model_input(img, input_size=(20, 20), color_mode="grayscale")
    assert out.max() == 255.0


def test_pad_letterboxes_and_keeps_aspect_ratio():
    img = np.full((50, 100, 3), 200, dtype=np.uint8)  # wide image
    out = pp.to_model_input(img, input_size=(64, 64), color_mode="rgb", resize="pad")
    assert out.shape == (64, 64, 3)
    # Content is 32 rows high, centred: rows 16..47 filled, the rest black.
    assert out[:16].max() == 0 and out[48:].max() == 0
    assert out[16:48].min() == 200
    stretched = pp.to_model_input(img, input_size=(64, 64), color_mode="rgb")
    assert stretched.min() == 200


def test_rgba_and_bad_input():
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    assert pp.to_model_input(rgba, input_size=(4, 4), color_mode="rgb").shape == (4, 4, 3)
    with pytest.raises(TypeError):
        pp.to_model_input(np.zeros((8, 8), dtype=np.float32), input_size=(4, 4), color_mode="rgb")
    with pytest.raises(ValueError):
        pp.to_model_input(np.zeros((8, 8), np.uint8), input_size=(4, 4), color_mode="cmyk")
    with pytest.raises(ValueError):
        pp.to_model_input(np.zeros((8, 8), np.uint8), input_size=(4, 4), color_mode="rgb", resize="x")


def test_batch_helper():
    images = [np.zeros((30, 40), np.uint8), np.zeros((50, 20, 3), np.uint8)]
    batch = pp.to_model_batch(images, input_size=(28, 28), color_mode="grayscale")
    assert batch.shape == (2, 28, 28, 1) and batch.dtype == np.float32
    empty = pp.to_model_batch([], input_size=(28, 28), color_mode="rgb")
    assert empty.shape == (0, 28, 28, 3)


def test_resize_heatmap_matches_original_aspect():
    heat = np.zeros((28, 28), np.float32)
    heat[:, :14] = 1.0  # left half hot
    out = pp.resize_heatmap(heat, (300, 500))
    assert out.shape == (300, 500)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out[:, :240].mean() > 0.95 and out[:, 260:].mean() < 0.05


def test_resize_heatmap_undoes_letterbox():
    original = (50, 100)
    img = np.full((*original, 3), 255, np.uint8)
    net = pp.to_model_input(img, input_size=(64, 64), color_mode="rgb", resize="pad")
    heat = (net[..., 0] > 0).astype(np.float32)  # 1 exactly where the image sits
    out = pp.resize_heatmap(heat, original, resize="pad")
    assert out.shape == original
    assert out.min() > 0.99  # the padding was cut away before resizing


def test_heatmap_to_uint8_and_overlay():
    heat = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    u8 = pp.heatmap_to_uint8(heat)
    assert u8.dtype == np.uint8 and u8.min() == 0 and u8.max() == 255
    over = pp.overlay_heatmap(np.zeros((4, 4), np.uint8), heat)
    assert over.shape == (4, 4, 3) and over.dtype == np.uint8
