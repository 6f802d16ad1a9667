"""Seed ensembles merged into one network: exact logit averaging, and a real tiny ensemble."""

import json
from dataclasses import replace

import numpy as np
import pytest

from inference.ml import cards, ensemble, ood, serving, training
from inference.ml.recipes import get_recipe


def _network(seed: int, *, input_shape=(16, 16, 1), classes=3):
    from inference.ml.architectures import build_model  # noqa: PLC0415 - TensorFlow

    training.set_seeds(seed)
    return build_model(
        "resnet", input_shape=input_shape, num_classes=classes, stem_filters=4, widths=(4, 8), blocks=(1, 1)
    )


def test_the_merged_network_is_the_softmax_of_the_members_mean_logits(tmp_path):
    members = [_network(1), _network(2), _network(3)]
    batch = np.random.default_rng(0).uniform(0, 255, (6, 16, 16, 1)).astype(np.float32)
    merged = ensemble.merge_members(members, name="trio")

    log_p = np.mean([np.log(serving.raw_proba(m, batch)) for m in members], axis=0)
    expected = np.exp(log_p) / np.exp(log_p).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(serving.raw_proba(merged, batch), expected, atol=1e-5)
    # Not just one member's answer.
    assert not np.allclose(serving.raw_proba(members[0], batch), expected, atol=1e-3)

    # It survives saving, and serves like any network: Grad-CAM over every member's last
    # feature map, and an input check over every member's stages.
    merged.save(tmp_path / "model.keras")
    reloaded = serving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(serving.raw_proba(reloaded, batch), expected, atol=1e-5)
    assert serving.find_gradcam_layer(reloaded) == "top_activation"
    assert reloaded.get_layer("top_activation").output.shape[-1] == 3 * 8
    maps = serving.gradcam(reloaded, batch, 1)
    assert maps.shape == (6, 16, 16) and maps.min() >= 0 and maps.max() <= 1
    expected_layers = {f"m{i}_{stage}" for i in range(3) for stage in ("s0b0_out", "s1b0_out")}
    assert sorted(ood.feature_layers(reloaded)) == sorted(expected_layers)


def test_members_must_be_alike_and_more_than_one():
    with pytest.raises(ValueError, match="at least two"):
        ensemble.merge_members([_network(1)], name="solo")
    with pytest.raises(ValueError, match="share their input shape"):
        ensemble.merge_members([_network(1), _network(2, classes=2)], name="mixed")


def test_a_real_tiny_ensemble_shares_one_split_and_is_calibrated_on_the_hold_out(tmp_path, datasets_root):
    recipe = replace(get_recipe("us-breast"), ema_momentum=0.9, calibration_fraction=0.2, epochs=1, patience=0)
    runs = []
    for init_seed in (11, 12):
        run = tmp_path / f"run{init_seed}"
        training.train_recipe(
            recipe, output_dir=run, datasets_root=datasets_root, limit=40, verbose=0, init_seed=init_seed
        )
        runs.append(run)
    a, b = (json.loads((run / "card.json").read_text()) for run in runs)
    # One data split, two different networks.
    assert a["seed"] == b["seed"] == recipe.seed
    assert a["dataset"]["splits"] == b["dataset"]["splits"]
    assert [a["recipe"]["training"]["init_seed"], b["recipe"]["training"]["init_seed"]] == [11, 12]
    weights_a = serving.load_model(runs[0] / "model.keras").get_weights()
    weights_b = serving.load_model(runs[1] / "model.keras").get_weights()
    assert not all(np.allclose(x, y) for x, y in zip(weights_a, weights_b, strict=True))

    output = tmp_path / "ensemble"
    card = ensemble.build_ensemble(recipe, runs, output_dir=output, datasets_root=datasets_root, command="cmd")
    cards.validate_card(json.loads((output / "card.json").read_text()))
    assert card["recipe"]["training"]["ensemble_of"] == 2
    assert [m["init_seed"] for m in card["recipe"]["training"]["members"]] == [11, 12]
    assert "training images held out" in card["dataset"]["temperature_fitted_on"]
    assert card["training_time_s"] >= a["training_time_s"] + b["training_time_s"]
    assert len(card["metrics"]["validation"]["members"]) == 2
    bundle = serving.load_bundle(output)
    proba = bundle.predict([np.zeros((40, 50), np.uint8), np.full((20, 20, 3), 200, np.uint8)])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)

    # The same network twice, or members from different splits, are refused.
    with pytest.raises(ValueError, match="share a training seed"):
        ensemble.build_ensemble(recipe, [runs[0], runs[0]], output_dir=tmp_path / "twice", datasets_root=datasets_root)
    other = tmp_path / "other-split"
    training.train_recipe(recipe, output_dir=other, datasets_root=datasets_root, limit=40, verbose=0, seed=5)
    with pytest.raises(ValueError, match="different data splits"):
        ensemble.build_ensemble(recipe, [runs[0], other], output_dir=tmp_path / "mixed", datasets_root=datasets_root)
    with pytest.raises(ValueError, match="already holds"):
        ensemble.build_ensemble(recipe, runs, output_dir=output, datasets_root=datasets_root)
