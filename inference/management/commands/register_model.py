import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from inference.ml.serving import find_gradcam_layer, load_model, model_input_shape, model_output_width
from inference.services import aimodel_register


class Command(BaseCommand):
    help = (
        "Register a trained Keras model (.keras or legacy .h5) as a new version. Older versions and their "
        "predictions are kept; with --activate (the default) new studies are routed to this version."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # Our --version (the model version) replaces Django's built-in --version flag.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="Model file (.keras or .h5).")
        parser.add_argument("--name", required=True)
        parser.add_argument("--version", required=True)
        parser.add_argument("--labels", nargs="+", required=True, help="Class labels in output order.")
        parser.add_argument("--normal-labels", nargs="*", default=None, help="Labels meaning 'nothing abnormal'.")
        parser.add_argument("--modality", nargs="+", required=True, help="DICOM modality codes, e.g. CR DX.")
        parser.add_argument("--body-part", required=True)
        parser.add_argument("--procedure", default="")
        parser.add_argument("--input-size", nargs=2, type=int, required=True, metavar=("HEIGHT", "WIDTH"))
        parser.add_argument("--color-mode", choices=["grayscale", "rgb"], required=True)
        parser.add_argument("--resize", choices=["stretch", "pad"], default="stretch")
        parser.add_argument("--temperature", type=float, default=1.0)
        parser.add_argument("--gradcam-layer", default=None)
        parser.add_argument("--display-name", default=None)
        parser.add_argument("--card", help="Optional card.json to start from (command-line values win).")
        parser.add_argument("--no-activate", action="store_true", help="Register without routing studies to it.")

    def handle(self, *args, **options) -> None:
        path = Path(options["path"])
        if path.suffix not in (".keras", ".h5", ".hdf5"):
            raise CommandError("The model must be a .keras or .h5 file.")
        if options["temperature"] <= 0:
            raise CommandError("--temperature must be positive.")
        try:
            model = load_model(path)
            outputs = model_output_width(model)
            input_shape = model_input_shape(model)
        except (FileNotFoundError, ValueError, OSError) as exc:
            raise CommandError(f"Could not load {path}: {exc}") from exc
        labels = options["labels"]
        if outputs != len(labels):
            raise CommandError(f"The model has {outputs} outputs but {len(labels)} labels were given.")
        height, width = options["input_size"]
        channels = 1 if options["color_mode"] == "grayscale" else 3
        for got, want, what in zip(
            input_shape, (height, width, channels), ("height", "width", "channels"), strict=True
        ):
            if got is not None and got != want:
                raise CommandError(f"The model's input {what} is {got}, not {want}.")
        normal = options["normal_labels"]
        if normal is not None and not set(normal) <= set(labels):
            raise CommandError(f"Normal labels {normal} must be among the labels {labels}.")
        gradcam_layer = options["gradcam_layer"]
        if gradcam_layer is None:
            try:
                gradcam_layer = find_gradcam_layer(model)
            except ValueError:
                gradcam_layer = None

        card = json.loads(Path(options["card"]).read_text()) if options["card"] else {}
        preprocessing = {**card.get("preprocessing", {}), "resize": options["resize"]}
        preprocessing.setdefault("scaling", "inside model")
        card.update(
            name=options["name"],
            version=options["version"],
            display_name=options["display_name"] or card.get("display_name") or options["name"],
            task="classification",
            labels=labels,
            normal_labels=normal if normal else None,
            input_size=[height, width],
            color_mode=options["color_mode"],
            preprocessing=preprocessing,
            modalities=options["modality"],
            body_part=options["body_part"],
            procedure=options["procedure"],
            temperature=options["temperature"],
            gradcam_layer=gradcam_layer,
        )
        try:
            registered = aimodel_register(weights_path=path, card=card, activate=not options["no_activate"])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"{registered}  [{registered.status}]  sha256 {registered.weights_sha256[:12]}")
