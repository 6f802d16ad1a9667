"""The input check: distances, threshold, storage, statistics, colour and the Keras feature path."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from inference.ml import ood, ood_build, training
from inference.ml.architectures import build_model
from inference.ml.datasets import read_image

SAMPLES = Path(__file__).resolve().parents[3] / "samples"


def _clusters(rng, n, centres, scale=1.0):
    labels = rng.integers(0, len(centres), n)
    return np.abs(np.asarray(centres)[labels] + rng.normal(0, scale, (n, len(centres[0])))), labels


def _batch(rng, n):
    """Model-input-like images with ordinary contrast (the pixel rule passes them)."""
    return rng.uniform(40, 200, (n, 8, 8, 1)).astype(np.float32)


def _fitted(rng):
    centres = [[4.0] * 6, [9.0, 1.0, 9.0, 1.0, 9.0, 1.0]]
    train_f, train_y = _clusters(rng, 600, centres)
    val_f, _ = _clusters(rng, 300, centres)
    check = ood.fit_check([train_f, train_f[:, :3]], train_y, [val_f, val_f[:, :3]], _batch(rng, 300))
    return check, centres, val_f


def test_gaussian_distance_is_small_near_a_class_mean_and_large_far_away():
    rng = np.random.default_rng(0)
    x, labels = _clusters(rng, 500, [[0.0, 0.0], [10.0, 10.0]], scale=0.5)
    g = ood.Gaussian.fit(x, labels)
    near = g.distance(np.array([[0.2, 0.1], [10.1, 9.8]]))
    far = g.distance(np.array([[5.0, 5.0], [30.0, -3.0]]))
    assert near.max() < 2.0
    assert far.min() > 20.0


def test_gaussian_survives_dead_and_duplicated_features():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (40, 3))
    x = np.c_[x, np.zeros(40), x[:, 0]]  # a dead unit and an exact copy: singular covariance
    g = ood.Gaussian.fit(x)
    assert np.isfinite(g.distance(x)).all()
    assert g.distance(np.array([[0, 0, 0, 5.0, 0]]))[0] > g.distance(x).max()


def test_check_refuses_outliers_and_few_of_its_own_validation_images():
    rng = np.random.default_rng(2)
    check, centres, val_f = _fitted(rng)
    fresh, _ = _clusters(rng, 1000, centres)
    assert check.refuse([fresh, fresh[:, :3]], _batch(rng, 1000)).mean() < 0.01
    odd = rng.uniform(20, 40, (50, 6))  # far from both classes
    assert check.refuse([odd, odd[:, :3]], _batch(rng, 50)).all()
    # Normal last layer, odd first layer: the largest layer distance decides.
    odd_early = np.c_[rng.uniform(20, 40, (50, 3)), fresh[:50, 3:]]
    assert check.refuse([odd_early, odd_early[:, :3]], _batch(rng, 50)).all()
    # In-distribution features but a blank or a saturated image: refused outright.
    blank = np.full((2, 8, 8, 1), 90.0, np.float32)
    saturated = np.full((2, 8, 8, 1), 254.0, np.float32)
    saturated[:, 0, 0] = 10.0
    assert check.refuse([fresh[:4], fresh[:4, :3]], np.concatenate([blank, saturated])).all()

    report = ood.check_report(
        check,
        check.scores([val_f, val_f[:, :3]], _batch(rng, 300)),
        {
            "odd": check.scores([odd, odd[:, :3]], _batch(rng, 50)),
            "same kind": check.scores([fresh[:50], fresh[:50, :3]], _batch(rng, 50)),
        },
        not_pooled=("same kind",),
    )
    assert report["auroc"] == 1.0 and report["other_n"] == 50
    assert report["per_source"]["odd"]["refused"] == 1.0
    assert report["per_source"]["same kind"]["pooled"] is False
    assert report["own_validation_refused"] < 0.01


def test_pixel_statistics_outside_the_training_range_are_refused():
    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[:16, :16]
    smooth = [(120 + 40 * np.sin(xx / rng.uniform(3, 6) + rng.uniform(0, 3))).reshape(16, 16, 1) for _ in range(80)]
    train_batch = np.stack(smooth).astype(np.float32)
    check, centres, val_f = _fitted(rng)
    check.pixel_range = ood.statistics_range(train_batch)
    fresh, _ = _clusters(rng, 2, centres)
    assert not check.pixel_outliers(train_batch).any()
    noise = rng.uniform(0, 255, (2, 16, 16, 1)).astype(np.float32)
    assert check.pixel_outliers(noise).all()
    # Features close to a class do not save an image whose pixels are unlike any training image.
    assert check.refuse([fresh, fresh[:, :3]], noise).all()
    assert not check.refuse([fresh, fresh[:, :3]], train_batch[:2]).any()


def test_check_round_trips_through_its_file_and_pins_its_hash(tmp_path):
    rng = np.random.default_rng(3)
    check, centres, _ = _fitted(rng)
    check.pixel_range = ood.statistics_range(rng.uniform(40, 200, (30, 8, 8, 1)))
    check.colour_range, check.colour_seen = ood.colour_range([0.05, 0.2, 0.4])
    digest = check.save(tmp_path / "ood.npz")
    loaded = ood.InputCheck.load(tmp_path / "ood.npz", sha256=digest)
    probe, _ = _clusters(rng, 20, centres)
    batch = _batch(rng, 20)
    assert np.allclose(
        loaded.scores([probe, probe[:, :3]], batch), check.scores([probe, probe[:, :3]], batch), rtol=1e-4
    )
    assert loaded.threshold == check.threshold
    assert np.array_equal(loaded.pixel_range, check.pixel_range)
    assert np.array_equal(loaded.colour_range, check.colour_range)
    assert np.array_equal(loaded.colour_seen, check.colour_seen)
    with pytest.raises(ValueError, match="sha256"):
        ood.InputCheck.load(tmp_path / "ood.npz", sha256="0" * 64)


def _rewritten(path, **changes):
    with np.load(path) as arrays:
        kept = {k: arrays[k] for k in arrays.files if k not in changes or changes[k] is not None}
    kept.update({k: v for k, v in changes.items() if v is not None})
    buffer = io.BytesIO()
    np.savez(buffer, **kept)
    path.write_bytes(buffer.getvalue())


def test_a_check_of_the_first_format_still_loads_without_a_colour_rule(tmp_path):
    rng = np.random.default_rng(3)
    check, centres, _ = _fitted(rng)
    check.save(tmp_path / "ood.npz")
    _rewritten(tmp_path / "ood.npz", format_version=np.array(1))

    loaded = ood.InputCheck.load(tmp_path / "ood.npz")

    assert loaded.colour_range is None and not loaded.trained_in_grey
    probe, _ = _clusters(rng, 3, centres)
    colourful = np.repeat(_batch(rng, 3), 3, axis=-1)
    colourful[..., 0] = 250.0
    assert loaded.colour_side([0.9, 0.0, 0.5]).tolist() == [0, 0, 0]
    assert not loaded.refuse([probe, probe[:, :3]], colourful, [0.9, 0.0, 0.5]).any()
    _rewritten(tmp_path / "ood.npz", format_version=np.array(99))
    with pytest.raises(ValueError, match="format 99"):
        ood.InputCheck.load(tmp_path / "ood.npz")


def test_colourfulness_is_zero_for_grey_and_the_channel_spread_for_colour():
    grey = np.random.default_rng(0).integers(0, 256, (50, 40), dtype=np.uint8)
    assert ood.colourfulness(grey) == 0.0
    assert ood.colourfulness(grey[:, :, None]) == 0.0
    assert ood.colourfulness(np.repeat(grey[:, :, None], 3, axis=2)) == 0.0  # grey stored as RGB
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 0] = 255
    assert ood.colourfulness(red) == pytest.approx(1.0)
    half = np.repeat(grey[:, :, None], 3, axis=2).astype(np.int16)
    half[:, :20, 2] = np.clip(half[:, :20, 2] + 51, 0, 255)  # left half tinted by at most 51 levels
    spread = (half.max(axis=2) - half.min(axis=2)).mean() / 255
    assert ood.colourfulness(half.astype(np.uint8)) == pytest.approx(spread, abs=1e-6)
    assert ood.colourfulness(np.dstack([red, np.full((20, 20), 7, np.uint8)])) == pytest.approx(1.0)  # alpha
    with pytest.raises(ValueError):
        ood.colourfulness(np.zeros((4, 4, 2), np.uint8))


def test_colourfulness_of_a_large_image_reads_a_grid_close_to_every_pixel():
    derm = read_image(SAMPLES / "derm-nv-1.jpg")
    large = np.asarray(PILImage.fromarray(derm).resize((3000, 2400)))
    every_pixel = (large.max(axis=2).astype(np.float64) - large.min(axis=2)).mean() / 255

    assert ood.colourfulness(large) == pytest.approx(every_pixel, abs=0.01)
    assert ood.colourfulness(large) == pytest.approx(ood.colourfulness(derm), abs=0.01)
    assert ood.colourfulness(read_image(SAMPLES / "cxr-normal-1.png")) == 0.0


def test_colour_range_of_grey_and_of_colour_training_images():
    accepted, seen = ood.colour_range([0.0] * 10)
    assert accepted.tolist() == [0.0, ood.COLOUR_FLOOR] and seen.tolist() == [0.0, 0.0]
    accepted, seen = ood.colour_range([0.05, 0.2, 0.45])
    assert accepted == pytest.approx([0.025, 0.55])  # half the least; the most plus a quarter of the span
    assert seen.tolist() == [0.05, 0.45]
    accepted, _ = ood.colour_range([0.30, 0.31])
    assert accepted[1] == pytest.approx(0.33)  # a narrow range still leaves the floor's room


def test_the_colour_rule_refuses_colour_for_a_grey_model_and_grey_for_a_colour_model():
    rng = np.random.default_rng(7)
    check, centres, val_f = _fitted(rng)
    fresh, _ = _clusters(rng, 4, centres)
    batch = _batch(rng, 4)  # ordinary pixels: only colour can refuse these
    features = [fresh, fresh[:, :3]]

    check.colour_range, check.colour_seen = ood.colour_range(np.zeros(100))
    assert check.trained_in_grey
    assert check.colour_side([0.0, 0.015, 0.03, 0.4]).tolist() == [0, 0, 1, 1]
    assert check.refuse(features, batch, [0.0, 0.015, 0.03, 0.4]).tolist() == [False, False, True, True]
    assert check.scores(features, batch, [0.4] * 4).min() == ood.DEGENERATE_SCORE

    check.colour_range, check.colour_seen = ood.colour_range(rng.uniform(0.05, 0.45, 100))
    assert not check.trained_in_grey
    assert check.colour_side([0.0, 0.01, 0.2, 0.9]).tolist() == [-1, -1, 0, 1]
    assert check.refuse(features, batch, [0.0, 0.01, 0.2, 0.9]).tolist() == [True, True, False, True]
    # Without the images as decoded, their model input stands in: here grey, so refused.
    assert check.refuse(features, np.repeat(batch, 3, axis=-1)).all()
    tinted = np.repeat(batch, 3, axis=-1)
    tinted[..., 0] = np.minimum(tinted[..., 0] + 50, 255)
    assert not check.refuse(features, tinted).any()


def test_fit_check_takes_its_colour_range_from_the_training_images():
    rng = np.random.default_rng(8)
    centres = [[4.0] * 6, [9.0, 1.0, 9.0, 1.0, 9.0, 1.0]]
    train_f, train_y = _clusters(rng, 600, centres)
    val_f, _ = _clusters(rng, 300, centres)
    val_colours = rng.uniform(0.1, 0.3, 300)
    val_colours[:30] = 0.0  # a tenth of validation is grey: refused, and left out of the threshold
    check = ood.fit_check(
        [train_f, train_f[:, :3]],
        train_y,
        [val_f, val_f[:, :3]],
        _batch(rng, 300),
        train_colourfulness=rng.uniform(0.1, 0.3, 600),
        val_colourfulness=val_colours,
    )
    assert check.colour_range[0] == pytest.approx(0.5 * check.colour_seen[0])
    scores = check.scores([val_f, val_f[:, :3]], _batch(rng, 300), val_colours)
    assert (scores[:30] == ood.DEGENERATE_SCORE).all()
    assert (scores[30:] > check.threshold).mean() < 0.01


def test_input_statistics_separate_blank_noise_and_anatomy_like_images():
    rng = np.random.default_rng(4)
    blank = np.zeros((1, 32, 32, 1), np.float32)
    noise = rng.uniform(0, 255, (1, 32, 32, 1)).astype(np.float32)
    yy, xx = np.mgrid[:32, :32]
    smooth = (128 + 60 * np.sin(xx / 6.0) * np.cos(yy / 7.0)).reshape(1, 32, 32, 1).astype(np.float32)
    stats = ood.input_statistics(np.concatenate([blank, noise, smooth]))
    assert stats.shape == (3, 10)
    assert stats[0, 1] == 0.0 and stats[0, 2] == 1.0  # no contrast, every pixel dark
    hf = stats[:, 5]
    assert hf[1] > 5 * hf[2]  # noise has far more high-frequency energy per unit contrast
    assert ood.input_statistics(np.zeros((2, 8, 8, 3))).shape == (2, 14)


@pytest.mark.parametrize("channels", [1, 3])
def test_input_statistics_are_exactly_those_of_numpys_channel_reductions(channels):
    """The check's pixel range was fitted with ``mean``/``max``/``min`` over the channel axis."""
    rng = np.random.default_rng(channels)
    batch = np.concatenate(
        [rng.uniform(0, 255, (3, 40, 36, channels)), np.round(rng.uniform(0, 255, (3, 40, 36, channels)))]
    ).astype(np.float32)
    stats = ood.input_statistics(batch)
    x = batch / 255.0
    gray = x.mean(axis=-1)
    np.testing.assert_array_equal(stats[:, 0], gray.reshape(len(x), -1).mean(axis=1).astype(np.float64))
    np.testing.assert_array_equal(stats[:, 1], gray.reshape(len(x), -1).std(axis=1).astype(np.float64))
    if channels == 3:
        chroma = x.max(axis=-1) - x.min(axis=-1)
        np.testing.assert_array_equal(stats[:, 10], chroma.mean(axis=(1, 2)).astype(np.float64))
        np.testing.assert_array_equal(stats[:, 11], chroma.std(axis=(1, 2)).astype(np.float64))


def test_synthetic_images_are_deterministic_and_of_each_kind():
    for kind in ood.SYNTHETIC_KINDS:
        a = ood.synthetic_images(kind, 3, seed=7, size=40)
        b = ood.synthetic_images(kind, 3, seed=7, size=40)
        assert len(a) == 3
        assert all(x.shape == (40, 40, 3) and x.dtype == np.uint8 for x in a)
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert ood.synthetic_images("blank", 1, seed=0)[0].std() == 0
    assert ood.synthetic_images("saturated", 4, seed=0)[0].mean() > 240
    with pytest.raises(ValueError):
        ood.synthetic_images("cats", 1)


def test_feature_model_pools_every_stage_of_a_medportal_network():
    model = build_model(
        "resnet", input_shape=(24, 24, 1), num_classes=3, stem_filters=4, widths=(4, 8), blocks=(2, 1), dropout=0.0
    )
    assert ood.feature_layers(model) == ["s0b1_out", "s1b0_out"]
    twin = ood.feature_model(model)
    batch = np.random.default_rng(5).uniform(0, 255, (5, 24, 24, 1)).astype(np.float32)
    proba, feats = ood.features_and_proba(twin, batch, batch_size=2)
    assert proba.shape == (5, 3)
    assert np.allclose(proba, np.asarray(model(batch)), atol=1e-5)
    assert [f.shape for f in feats] == [(5, 8), (5, 16)]  # mean and std per channel

    # The worker's single pass: probabilities and the refusal from the same forward pass.
    labels = np.array([0, 1, 2, 0, 1])
    check = ood.fit_check(feats, labels, feats, batch)
    blank = np.full((1, 24, 24, 1), 128.0, np.float32)
    proba_again, refused = ood.assess(twin, check, np.concatenate([batch, blank]))
    assert np.allclose(proba_again[:5], proba, atol=1e-6)
    assert refused.tolist() == [False] * 5 + [True]


def test_build_input_check_on_a_tiny_real_model(tmp_path, datasets_root):
    training.train_recipe("us-breast", output_dir=tmp_path, datasets_root=datasets_root, epochs=1, limit=40, verbose=0)
    outside = ood_build.OutsideImages(datasets_root, per_dataset=4, per_kind=2)
    entry = ood_build.build_input_check(tmp_path, datasets_root=datasets_root, outside=outside, limit=40)

    card = json.loads((tmp_path / "card.json").read_text())
    assert card["input_check"] == entry
    loaded = ood.InputCheck.load(tmp_path / ood.OOD_FILENAME, sha256=entry["sha256"])
    assert loaded.threshold == pytest.approx(entry["threshold"], rel=1e-5)
    assert "dataset:breastmnist" not in entry["per_source"]
    assert entry["not_pooled"] == []  # no other breast ultrasound data set
    assert {"dataset:pneumoniamnist", "synthetic:uniform_noise"} <= set(entry["per_source"])
    assert 0.0 <= entry["auroc"] <= 1.0
    # Breast ultrasound is grey: every colour data set's image is refused for its colour alone.
    assert entry["colour_of_training_images"] == [0.0, 0.0]
    assert entry["colour_range"] == [0.0, ood.COLOUR_FLOOR]
    for source in ("dataset:ham10000_mel_nv", "dataset:blood_cells_pbc", "dataset:retinamnist"):
        assert entry["per_source"][source]["refused"] == 1.0, source
