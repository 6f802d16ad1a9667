import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inference.ml.cards import CardError, read_card
from inference.ml.evaluation import EvaluationError, evaluate, read_file_list
from inference.ml.serving import load_model
from inference.models import AIModel
from inference.runtime import ModelBroken, ModelUnavailable, keras_model_for


class Command(BaseCommand):
    help = (
        "Evaluate a registered model (by name) or a .keras/.h5 file with card.json beside it on labelled data. "
        "Prints only JSON to stdout."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # Our --version (the model version) replaces Django's built-in --version flag.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser) -> None:
        parser.add_argument("model", help="Registered model name (active or newest version) or a model file path.")
        parser.add_argument("--data", required=True, help="An npz file or a directory of class sub-folders.")
        parser.add_argument("--split", default="test", help="npz key prefix to evaluate (default: test).")
        parser.add_argument("--version", help="A specific registered version.")
        parser.add_argument(
            "--files",
            help="Text file listing <class>/<file> paths under --data, one a line: evaluate only those "
            "(e.g. a validation subset carved from a training folder).",
        )
        parser.add_argument(
            "--bootstrap", type=int, default=0, help="Add 95%% bootstrap intervals from this many resamples."
        )

    def handle(self, *args, **options) -> None:
        model, card = self._resolve(options["model"], options["version"])
        try:
            files = read_file_list(options["files"]) if options["files"] else None
            result = evaluate(
                model, card, options["data"], split=options["split"], files=files, bootstrap=options["bootstrap"]
            )
        except (EvaluationError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
        result = {"model": card["name"], "version": card.get("version"), "split": options["split"], **result}
        self.stdout.write(json.dumps(result))

    def _resolve(self, ref: str, version: str | None):
        path = Path(ref)
        if path.suffix in (".keras", ".h5", ".hdf5") or path.exists():
            try:
                card = read_card(path)
                return load_model(path if path.is_file() else path / "model.keras"), card
            except (CardError, FileNotFoundError, ValueError) as exc:
                raise CommandError(str(exc)) from exc
        versions = AIModel.objects.filter(name=ref)
        if version:
            versions = versions.filter(version=version)
        registered = versions.active().first() or versions.order_by("-created_at").first()
        if registered is None:
            raise CommandError(f"No registered model or model file called {ref!r}.")
        try:
            model = keras_model_for(registered)
        except (ModelBroken, ModelUnavailable) as exc:
            raise CommandError(str(exc)) from exc
        card = dict(registered.card or {})
        card.update(
            name=registered.name,
            version=registered.version,
            labels=list(registered.labels),
            input_size=[registered.input_height, registered.input_width],
            color_mode=registered.color_mode,
            preprocessing=registered.preprocessing or {},
            temperature=registered.temperature,
        )
        return model, card
