"""Seed ensembles shipped as one network.

Members are runs of one recipe that share its data split (``--seed``) and differ only in
``--init-seed``, so the calibration hold-out is unseen by all of them. They are merged
into a single Keras graph because everything downstream (worker, Grad-CAM, input check,
registry, storage) serves exactly one model file per version.

Averaging the members' logits equals one dense layer over their concatenated pooled
features, with the members' kernels stacked and divided by their number and the mean of
their biases. So the merged graph ends the way a single network does: ``top_activation``
(every member's last feature map, side by side), ``gap``, ``logits``, ``probabilities``;
and Grad-CAM through it is the members' evidence summed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import cards
from .architectures import GRADCAM_LAYER, LOGITS_LAYER, OUTPUT_LAYER
from .calibration import fit_temperature
from .recipes import Recipe, get_recipe
from .serving import load_model, raw_proba
from .training import build_card, load_data, portable_command, refuse_overwrite, validation_report

logger = logging.getLogger(__name__)

MEMBER_PREFIX = "m{index}_"


def merge_members(members: Sequence, *, name: str):
    """One network whose output is ``softmax(mean of the members' logits)``.

    Each member must be a MedPortal network (``architectures.build_resnet``) with the same
    input shape and classes; its layers up to ``top_activation`` are copied with their
    weights under the prefix ``m<i>_``; dropout is left out (it does nothing at inference).
    """
    import keras  # noqa: PLC0415 - TensorFlow: loaded only once a model is used
    from keras import layers  # noqa: PLC0415 - TensorFlow: loaded only once a model is used

    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    shape = tuple(members[0].inputs[0].shape[1:])
    width = int(members[0].outputs[0].shape[-1])
    for member in members:
        if tuple(member.inputs[0].shape[1:]) != shape or int(member.outputs[0].shape[-1]) != width:
            raise ValueError("ensemble members must share their input shape and classes")
        for needed in (GRADCAM_LAYER, LOGITS_LAYER):
            member.get_layer(needed)  # ValueError if the member is not a MedPortal network

    image = keras.Input(shape=shape, name="image")
    tops = []
    for index, member in enumerate(members):
        prefix = MEMBER_PREFIX.format(index=index)
        tensors = {id(member.inputs[0]): image}
        for layer in member.layers:
            if layer.__class__.__name__ == "InputLayer":
                continue
            node = layer._inbound_nodes[0]
            inputs = [tensors[id(t)] for t in node.input_tensors]
            copy = layer.__class__.from_config({**layer.get_config(), "name": prefix + layer.name})
            output = copy(inputs if len(inputs) > 1 else inputs[0])
            copy.set_weights(layer.get_weights())
            tensors[id(node.output_tensors[0])] = output
            if layer.name == GRADCAM_LAYER:
                tops.append(output)
                break
    x = layers.Concatenate(name=GRADCAM_LAYER)(tops)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    logits = layers.Dense(width, name=LOGITS_LAYER)
    x = logits(x)
    kernels = [member.get_layer(LOGITS_LAYER).get_weights() for member in members]
    logits.set_weights(
        [
            np.concatenate([k for k, _ in kernels], axis=0) / len(members),
            np.mean([b for _, b in kernels], axis=0),
        ]
    )
    outputs = layers.Activation("softmax", dtype="float32", name=OUTPUT_LAYER)(x)
    return keras.Model(image, outputs, name=name)


def build_ensemble(
    recipe: Recipe | str,
    member_dirs: Sequence[str | Path],
    *,
    output_dir: str | Path,
    datasets_root: str | Path | None = None,
    command: str | None = None,
) -> dict:
    """Merge trained runs of one recipe, calibrate and evaluate the merged network.

    Writes ``model.keras`` + ``card.json`` into ``output_dir`` like ``train_recipe``; the
    card's ``recipe.training.members`` keeps every member's own training record. The
    temperature is fitted on the calibration hold-out the members share and validation is
    used for reporting only, as for a single network.
    """
    if isinstance(recipe, str):
        recipe = get_recipe(recipe)
    output_dir = Path(output_dir)
    refuse_overwrite(output_dir, recipe)
    if not recipe.calibration_fraction:
        raise ValueError(f"{recipe.name}: an ensemble needs a recipe with a calibration hold-out")
    started = time.perf_counter()
    member_cards = [cards.read_card(Path(d) / cards.MODEL_FILENAME) for d in member_dirs]
    seeds = {int(card["seed"]) for card in member_cards}
    if len(seeds) != 1:
        raise ValueError(f"members were trained on different data splits (seeds {sorted(seeds)}); use --init-seed")
    init_seeds = [int(card["recipe"]["training"].get("init_seed", card["seed"])) for card in member_cards]
    if len(set(init_seeds)) != len(init_seeds):
        raise ValueError(f"two members share a training seed ({init_seeds}): they are the same network")
    for card in member_cards:
        if card["name"] != recipe.name or tuple(card["input_size"]) != tuple(recipe.input_size):
            raise ValueError(f"{card['name']} {card['version']} is not a run of {recipe.name} at {recipe.input_size}")
    seed = seeds.pop()
    members = [load_model(Path(d) / cards.MODEL_FILENAME) for d in member_dirs]
    model = merge_members(members, name=recipe.name.replace("-", "_"))

    data = load_data(recipe, datasets_root=datasets_root, seed=seed)
    temperature = fit_temperature(raw_proba(model, data.calibration.images), data.calibration.labels)
    report = validation_report(data.val.labels, raw_proba(model, data.val.images), temperature, recipe.labels)
    report["members"] = [
        {
            "init_seed": init_seed,
            "accuracy": card["metrics"]["validation"]["accuracy"],
            "macro_auc": card["metrics"]["validation"]["macro_auc"],
        }
        for init_seed, card in zip(init_seeds, member_cards, strict=True)
    ]

    output_dir.mkdir(parents=True, exist_ok=True)
    model.save(output_dir / cards.MODEL_FILENAME)
    members_time = sum(float(card["training_time_s"]) for card in member_cards)
    card = build_card(
        recipe,
        data=data,
        report=report,
        temperature=temperature,
        parameters=int(model.count_params()),
        training_time_s=members_time + time.perf_counter() - started,
        seed=seed,
        gradcam_layer=GRADCAM_LAYER,
        training={
            "ensemble_of": len(members),
            "members": [
                {"version": card["version"], "init_seed": init_seed, **card["recipe"]["training"]}
                for init_seed, card in zip(init_seeds, member_cards, strict=True)
            ],
            "merged_by": "mean of the members' logits (inference.ml.ensemble.merge_members)",
            **({"command": command} if command else {}),
        },
    )
    cards.write_card(card, output_dir)
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Merge trained runs of one recipe into a seed ensemble.")
    parser.add_argument("recipe")
    parser.add_argument("members", nargs="+", help="Output folders of training runs (model.keras + card.json).")
    parser.add_argument("--output", required=True)
    parser.add_argument("--datasets-root")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    card = build_ensemble(
        args.recipe,
        args.members,
        output_dir=args.output,
        datasets_root=args.datasets_root,
        command=portable_command(argv if argv is not None else sys.argv[1:], module="inference.ml.ensemble"),
    )
    summary = {k: v for k, v in card["metrics"]["validation"].items() if k not in ("per_class", "members")}
    sys.stdout.write(json.dumps({"name": card["name"], "temperature": card["temperature"], **summary}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
