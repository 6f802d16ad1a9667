"""A real, tiny training run on the shared PneumoniaMNIST data (skipped when absent)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from inference.ml import cards, serving, training
from inference.ml.architectures import LOGITS_LAYER
from inference.ml.recipes import RECIPES, get_recipe


def test_recipes_route_with_the_agreed_codes():
    assert set(RECIPES) == {
        "cxr-pneumonia",
        "cxr-covid19",
        "mri-brain-tumour",
        "derm-melanoma",
        "fundus-dr-grade",
        "smear-cell-type",
        "smear-malaria",
        "us-breast",
    }
    assert RECIPES["smear-cell-type"].normal_labels is None
    assert RECIPES["smear-malaria"].procedure == "MALARIA_SCREEN"
    for recipe in RECIPES.values():
        if recipe.normal_labels is not None:
            assert set(recipe.normal_labels) <= set(recipe.labels)


def test_tiny_real_training_run(tmp_path, datasets_root):
    card = training.train_recipe(
        "cxr-pneumonia",
        output_dir=tmp_path,
        datasets_root=datasets_root,
        epochs=1,
        limit=32,
        verbose=0,
    )
    assert (tmp_path / "model.keras").exists()
    on_disk = json.loads((tmp_path / "card.json").read_text())
    cards.validate_card(on_disk)
    assert on_disk["labels"] == ["normal", "pneumonia"]
    assert on_disk["input_size"] == [28, 28]
    assert on_disk["dataset"]["path"] == "pneumoniamnist"
    assert card["recipe"]["epochs"] == 1
    assert card["temperature"] > 0

    bundle = serving.load_bundle(tmp_path)
    images = [np.zeros((64, 80), np.uint8), np.full((30, 30, 3), 128, np.uint8)]
    proba = bundle.predict(images)
    assert proba.shape == (2, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    maps = bundle.heatmaps(images, proba.argmax(1))
    assert maps[0].shape == (64, 80) and maps[1].shape == (30, 30)


def test_cosine_schedule_warms_up_then_decays_to_its_floor():
    from inference.ml.averaging import cosine_lr  # noqa: PLC0415 - imports Keras: only this test pays for it

    assert cosine_lr(0.0, peak=1.0, warmup=0.1) == pytest.approx(0.1)
    assert cosine_lr(0.1, peak=1.0, warmup=0.1) == pytest.approx(1.0)
    assert cosine_lr(0.55, peak=1.0, warmup=0.1) == pytest.approx(0.505)
    assert cosine_lr(1.0, peak=1.0, warmup=0.1) == pytest.approx(0.01)
    assert cosine_lr(3.0, peak=1.0, warmup=0.1) == pytest.approx(0.01)


def test_weight_averaged_run_holds_out_a_calibration_part_and_keeps_the_averaged_weights(tmp_path, datasets_root):
    recipe = replace(get_recipe("us-breast"), ema_momentum=0.9, calibration_fraction=0.2, epochs=2, patience=0)
    card = training.train_recipe(
        recipe, output_dir=tmp_path, datasets_root=datasets_root, limit=40, verbose=0, checkpoint_dir=tmp_path / "ck"
    )
    splits = card["dataset"]["splits"]
    assert splits["calibration"] > 0 and splits["train"] + splits["calibration"] <= 40
    assert "training images held out" in card["dataset"]["temperature_fitted_on"]
    assert card["recipe"]["ema_momentum"] == 0.9
    assert card["recipe"]["training"]["final_progress"] == 1.0
    assert card["metrics"]["validation"]["ci95"]["accuracy"][0] <= card["metrics"]["validation"]["accuracy"]
    lines = (tmp_path / "ck" / "progress.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    # The saved network is the averaged one: the last checkpoint holds the same learned weights;
    # only the batch-norm statistics were re-estimated on the clean training images.
    saved = serving.load_model(tmp_path / "model.keras")
    checkpoint = serving.load_model(tmp_path / "ck" / "ema.keras")
    pairs = list(zip(saved.trainable_weights, checkpoint.trainable_weights, strict=True))
    assert all(np.allclose(a.numpy(), b.numpy()) for a, b in pairs)
    assert card["recipe"]["training"]["batch_norm_recalibrated_on_train_images"] == splits["train"]
    statistics = list(zip(saved.non_trainable_weights, checkpoint.non_trainable_weights, strict=True))
    assert not all(np.allclose(a.numpy(), b.numpy()) for a, b in statistics)
    # And a second run into the same directory is refused rather than replacing it.
    with pytest.raises(ValueError, match="already holds"):
        training.train_recipe(recipe, output_dir=tmp_path, datasets_root=datasets_root, limit=40, verbose=0)


def test_prior_correction_turns_balanced_weighting_back_into_the_training_prevalence():
    from inference.ml.architectures import build_model  # noqa: PLC0415 - TensorFlow
    from inference.ml.serving import raw_proba  # noqa: PLC0415 - TensorFlow

    model = build_model("resnet", input_shape=(8, 8, 1), num_classes=3, widths=(4,), blocks=(1,), dropout=0.0)
    images = np.random.default_rng(0).uniform(0, 255, (5, 8, 8, 1)).astype(np.float32)
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    weights = training.class_weights(labels, 3)
    balanced = raw_proba(model, images)

    shift = training.correct_prior(model, weights)

    prevalence = np.bincount(labels) / len(labels)
    expected = balanced * prevalence
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(raw_proba(model, images), expected, rtol=1e-4, atol=1e-6)
    assert shift[0] > shift[1] > shift[2]


def test_finishing_an_earlier_run_keeps_its_weights_and_training_record(tmp_path, datasets_root):
    recipe = replace(get_recipe("us-breast"), ema_momentum=0.9, calibration_fraction=0.2, epochs=1, patience=0)
    first = training.train_recipe(recipe, output_dir=tmp_path / "run", datasets_root=datasets_root, limit=40, verbose=0)

    card = training.train_recipe(
        replace(recipe, calibration_folds=3),
        output_dir=tmp_path / "done",
        datasets_root=datasets_root,
        limit=40,
        verbose=0,
        finish_from=tmp_path / "run",
    )

    # The temperature is now fitted on the calibration part and validation together, and
    # calibration is reported on images each fold's temperature did not see.
    splits = card["dataset"]["splits"]
    cross_fitted = card["metrics"]["cross_fitted"]
    assert cross_fitted["n"] == splits["calibration"] + splits["val"] and cross_fitted["folds"] == 3
    assert card["dataset"]["temperature_fitted_on"].startswith(f"{cross_fitted['n']} images")
    assert "metrics.cross_fitted" in card["dataset"]["validation_method"]
    record = card["recipe"]["training"]["finished_from"]
    assert record["training"]["epochs_run"] == 1 and record["trained_at"] == first["trained_at"]
    assert card["training_time_s"] >= first["training_time_s"]
    run = serving.load_model(tmp_path / "run" / "model.keras")
    done = serving.load_model(tmp_path / "done" / "model.keras")
    pairs = zip(run.trainable_weights, done.trainable_weights, strict=True)
    assert all(np.allclose(a.numpy(), b.numpy()) for a, b in pairs)

    # An earlier run whose logits carry a prior correction is taken back to the weights
    # training produced, so finishing it never adds the correction a second time.
    trained_bias = run.get_layer(LOGITS_LAYER).get_weights()[1]
    earlier = json.loads((tmp_path / "run" / "card.json").read_text())
    earlier["recipe"]["training"]["prior_correction_added_to_logits"] = training.correct_prior(run, {0: 0.5, 1: 2.0})
    run.save(tmp_path / "run" / "model.keras")
    (tmp_path / "run" / "card.json").write_text(json.dumps(earlier))
    training.train_recipe(
        recipe, output_dir=tmp_path / "again", datasets_root=datasets_root, limit=40, verbose=0,
        finish_from=tmp_path / "run",
    )  # fmt: skip
    again = serving.load_model(tmp_path / "again" / "model.keras")
    np.testing.assert_allclose(again.get_layer(LOGITS_LAYER).get_weights()[1], trained_bias, atol=1e-6)
    with pytest.raises(ValueError, match="not a run of"):
        training.train_recipe(
            replace(recipe, input_size=(32, 32)), output_dir=tmp_path / "x", datasets_root=datasets_root, limit=40,
            verbose=0, finish_from=tmp_path / "run",
        )  # fmt: skip


def test_batch_norm_statistics_are_re_estimated_on_the_images_given():
    from inference.ml.architectures import build_model  # noqa: PLC0415 - TensorFlow
    from inference.ml.averaging import recalibrate_batch_norm  # noqa: PLC0415 - TensorFlow

    model = build_model("resnet", input_shape=(8, 8, 1), num_classes=3, widths=(4,), blocks=(1,), dropout=0.0)
    images = np.random.default_rng(0).uniform(100, 255, (32, 8, 8, 1)).astype(np.float32)
    assert not np.allclose(model(images, training=False), model(images, training=True), atol=1e-3)

    used = recalibrate_batch_norm(model, images, batch_size=len(images))

    # One batch of everything: the stored statistics are exactly those of these images.
    assert used == len(images)
    np.testing.assert_allclose(model(images, training=False), model(images, training=True), atol=1e-3)
    assert model.get_layer("stem_bn").momentum == 0.9


def test_the_recorded_command_keeps_relative_paths_and_drops_machine_ones():
    command = training.portable_command(["us-breast", "--output", "/srv/runs/breast", "--checkpoint-dir", "ck/b"])
    assert command == "python -m inference.ml.training us-breast --output breast --checkpoint-dir ck/b"


def test_mixup_blends_each_image_and_its_label_by_the_same_weight():
    import tensorflow as tf  # noqa: PLC0415 - TensorFlow: only these tests pay for it

    values = np.array([0.0, 60.0, 120.0, 180.0, 240.0, 30.0], np.float32)
    images = np.stack([np.full((3, 3, 1), v, np.float32) for v in values])
    labels = np.array([0, 1, 2, 0, 1, 2])
    blend = training.mixup(0.4, 3, seed=5)
    mixed_x, mixed_y = (t.numpy() for t in blend(tf.constant(images), tf.constant(labels)))

    assert mixed_x.shape == images.shape and mixed_y.shape == (6, 3)
    np.testing.assert_allclose(mixed_y.sum(axis=1), 1.0, atol=1e-6)
    # Each blended image is lam * own + (1 - lam) * partner; with images of one value each, the
    # value gives lam back, and the label must carry the same weight on the same two classes.
    one_hot = np.eye(3)[labels]
    for i in range(6):
        candidates = []
        for j in range(6):
            lam = 1.0 if values[i] == values[j] else (mixed_x[i, 0, 0, 0] - values[j]) / (values[i] - values[j])
            label = lam * one_hot[i] + (1 - lam) * one_hot[j]
            if -1e-4 <= lam <= 1 + 1e-4 and np.allclose(label, mixed_y[i], atol=1e-4):
                candidates.append(j)
        assert candidates, f"image {i} is not a blend of itself and one partner with its label blended alike"
    assert not np.allclose(mixed_x, images)  # something was blended


def test_a_mixup_recipe_trains_on_soft_labels_and_says_so_on_its_card(tmp_path, datasets_root):
    recipe = replace(get_recipe("us-breast"), mixup_alpha=0.2, ema_momentum=0.9, calibration_fraction=0.2, epochs=1)
    card = training.train_recipe(recipe, output_dir=tmp_path, datasets_root=datasets_root, limit=40, verbose=0)
    assert card["recipe"]["mixup_alpha"] == 0.2
    assert "mixup_alpha" not in get_recipe("us-breast").hyperparameters()
    proba = serving.load_bundle(tmp_path).predict([np.zeros((30, 30), np.uint8)])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
