"""A real, tiny training run on the shared PneumoniaMNIST data (skipped when absent)."""

import json

import numpy as np

from inference.ml import cards, serving, training
from inference.ml.recipes import RECIPES


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
