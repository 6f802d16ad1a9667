import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.ml.recipes import RECIPES
from inference.ml.training import train_recipe
from inference.services import aimodel_register


class Command(BaseCommand):
    help = "Train a model recipe and write model.keras + card.json (optionally register it)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("recipe", choices=sorted(RECIPES))
        parser.add_argument("--datasets-root", help="Folder holding the data sets (default ../shared/datasets).")
        parser.add_argument("--data", help="Path to this recipe's npz file or class-folder root, overriding the root.")
        parser.add_argument(
            "--output",
            help="Output directory; must not hold a model yet (default: the model zoo folder of the recipe).",
        )
        parser.add_argument("--epochs", type=int, help="Override the recipe's epoch count.")
        parser.add_argument("--limit", type=int, help="Train on at most N images per split (smoke runs).")
        parser.add_argument("--seed", type=int, help="Data split seed (and training seed unless --init-seed).")
        parser.add_argument(
            "--init-seed",
            type=int,
            help="Training seed only (weights, shuffling, augmentation): members of a seed ensemble.",
        )
        parser.add_argument(
            "--time-budget-min", type=float, help="Weight-averaged recipes: finish the schedule within this time."
        )
        parser.add_argument("--checkpoint-dir", help="Save the averaged model and a progress line after each epoch.")
        parser.add_argument(
            "--register", action="store_true", help="Register the trained version and route studies to it."
        )

    def handle(self, *args, **options) -> None:
        output = Path(options["output"] or Path(settings.MEDPORTAL_MODEL_ZOO) / options["recipe"])
        try:
            card = train_recipe(
                options["recipe"],
                output_dir=output,
                datasets_root=options["datasets_root"],
                data_path=options["data"],
                epochs=options["epochs"],
                limit=options["limit"],
                seed=options["seed"],
                init_seed=options["init_seed"],
                verbose=2 if options["verbosity"] > 1 else 0,
                time_budget_s=options["time_budget_min"] * 60 if options["time_budget_min"] else None,
                checkpoint_dir=options["checkpoint_dir"],
                command=_command_line(options),
            )
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise CommandError(str(exc)) from exc
        validation = card["metrics"]["validation"]
        summary = {
            "name": card["name"],
            "version": card["version"],
            "output": str(output),
            "temperature": card["temperature"],
            "parameters": card["parameters"],
            "training_time_s": card["training_time_s"],
            **{
                k: validation[k] for k in ("accuracy", "balanced_accuracy", "macro_auc", "ece_before", "ece_after", "n")
            },
        }
        if options["register"]:
            model = aimodel_register(weights_path=output / "model.keras", card=card, activate=True)
            summary["registered"] = str(model)
        self.stdout.write(json.dumps(summary))


def _command_line(options: dict) -> str:
    """The command as it could be typed again, for the model card."""
    parts = ["python manage.py train_model", options["recipe"]]
    for key in (
        "datasets_root",
        "data",
        "output",
        "epochs",
        "limit",
        "seed",
        "init_seed",
        "time_budget_min",
        "checkpoint_dir",
    ):
        if options.get(key) is not None:
            parts.append(f"--{key.replace('_', '-')} {options[key]}")
    return " ".join(parts)
