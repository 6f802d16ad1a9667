import copy
from pathlib import Path

import pytest

from inference.ml import cards


def _card():
    return {
        "name": "x",
        "version": "1.0.0",
        "display_name": "X",
        "task": "classification",
        "labels": ["a", "b"],
        "normal_labels": ["a"],
        "input_size": [28, 28],
        "color_mode": "grayscale",
        "preprocessing": {"resize": "stretch", "scaling": "inside model (Rescaling 1/255)"},
        "modalities": ["CR"],
        "body_part": "CHEST",
        "procedure": "",
        "temperature": 1.2,
        "gradcam_layer": None,
        "dataset": {
            "name": "d",
            "path": "d",
            "source": "s",
            "licence": "l",
            "citation": "c",
            "splits": {"train": 1, "val": 1},
            "validation_method": "m",
        },
        "intended_use": "u",
        "limitations": "l",
        "not_for": "n",
        "metrics": {
            "validation": {
                "accuracy": 1.0,
                "balanced_accuracy": 1.0,
                "macro_auc": 1.0,
                "ece_before": 0.1,
                "ece_after": 0.05,
                "per_class": {
                    "a": {"sensitivity": 1.0, "specificity": 1.0},
                    "b": {"sensitivity": 1.0, "specificity": 1.0},
                },
                "confusion_matrix": [[1, 0], [0, 1]],
                "n": 2,
            }
        },
        "published_benchmark": {"accuracy": 0.9, "source": "s"},
        "parameters": 10,
        "training_time_s": 1.0,
        "trained_at": "2024-01-01T00:00:00+00:00",
        "framework": {"tensorflow": "x", "keras": "y"},
        "seed": 1,
        "recipe": {},
    }


def test_valid_card_round_trips(tmp_path):
    path = cards.write_card(_card(), tmp_path)
    assert cards.read_card(path)["name"] == "x"
    assert cards.read_card(tmp_path / "model.keras")["labels"] == ["a", "b"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.pop("temperature"),
        lambda c: c.update(normal_labels=["zzz"]),
        lambda c: c.update(color_mode="cmyk"),
        lambda c: c.update(temperature=-1.0),
        lambda c: c["metrics"]["validation"]["per_class"].pop("b"),
        lambda c: c.update(input_size=[28]),
        lambda c: c["metrics"].update(cross_fitted={"n": 10, "folds": 5}),
    ],
)
def test_invalid_cards_are_rejected(mutate):
    card = copy.deepcopy(_card())
    mutate(card)
    with pytest.raises(cards.CardError):
        cards.validate_card(card)


def test_null_normal_labels_allowed():
    card = _card()
    card["normal_labels"] = None
    cards.validate_card(card)


def test_shipped_cards_name_no_machine_paths():
    """A card's training commands must read the same on any machine: no absolute paths."""
    import re  # noqa: PLC0415

    zoo = Path(__file__).resolve().parents[3] / "inference" / "zoo"
    for card_file in zoo.glob("*/card.json"):
        text = card_file.read_text()
        for command in re.findall(r'"command": "([^"]*)"', text):
            assert not re.search(r"(^|\s)/\S", command), (card_file.parent.name, command)
