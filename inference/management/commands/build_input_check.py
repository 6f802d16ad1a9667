import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.ml.ood_build import OTHER_PER_DATASET, SYNTHETIC_PER_KIND, OutsideImages, build_input_check
from inference.ml.training import default_datasets_root


class Command(BaseCommand):
    help = (
        "Build (or rebuild) the input check (ood.npz) of model directories from their training data, "
        "measure it against the other data sets and synthetic images, and record both in card.json."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "models", nargs="*", help="Model directories or shipped model names (default: every shipped model)."
        )
        parser.add_argument("--datasets-root", help="Folder holding the data sets (default ../shared/datasets).")
        parser.add_argument("--limit", type=int, help="At most N images per split (smoke runs).")

    def handle(self, *args, **options) -> None:
        zoo = Path(settings.MEDPORTAL_MODEL_ZOO)
        refs = options["models"] or sorted(p.parent.name for p in zoo.glob("*/card.json"))
        root = Path(options["datasets_root"]) if options["datasets_root"] else default_datasets_root()
        # The shipped-model test measures the cards again with the same numbers of outside images.
        outside = OutsideImages(
            root,
            per_dataset=min(options["limit"] or OTHER_PER_DATASET, OTHER_PER_DATASET),
            per_kind=min(options["limit"] or SYNTHETIC_PER_KIND, SYNTHETIC_PER_KIND),
        )
        for ref in refs:
            directory = Path(ref) if Path(ref).is_dir() else zoo / ref
            if not (directory / "card.json").exists():
                raise CommandError(f"{ref}: no model directory with a card.json")
            try:
                entry = build_input_check(directory, datasets_root=root, outside=outside, limit=options["limit"])
            except (FileNotFoundError, ValueError, KeyError) as exc:
                raise CommandError(f"{ref}: {exc}") from exc
            summary = {
                "model": directory.name,
                **{k: entry[k] for k in ("auroc", "own_validation_refused", "other_refused", "threshold", "sha256")},
            }
            self.stdout.write(json.dumps(summary))
