"""Measurements of one model in a process of its own; prints one JSON line.

    python -m bench.model_probe forward <model dir>            raw batched forward pass (the ceiling)
    python -m bench.model_probe naive <model dir> <image>      the prototype's way: per-request predict
    python -m bench.model_probe cost <model dir> [...]          parameters and multiply-adds per image

No database, broker or web server here: the forward pass runs on preloaded tensors, through the
same ``predict_proba`` the worker calls.
"""

import argparse
import io
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from inference.forward import CompiledForward
from inference.ml.preprocessing import to_model_input
from inference.ml.serving import configure_devices, load_model, predict_proba


def rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _card(directory: Path) -> dict:
    return json.loads((directory / "card.json").read_text())


def _throughput(call, batch: np.ndarray, *, min_seconds: float) -> float:
    call(batch)  # build kernels outside the timing
    call(batch)
    done, started = 0, time.perf_counter()
    while True:
        call(batch)
        done += len(batch)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds and done >= 4 * len(batch):
            return done / elapsed


def forward(directory: Path, batch_sizes: list[int], min_seconds: float) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    device = configure_devices()
    rss_before = rss_mib()
    card = _card(directory)
    model = load_model(directory / "model.keras")
    height, width = card["input_size"]
    channels = 1 if card["color_mode"] == "grayscale" else 3
    rng = np.random.default_rng(0)
    temperature = float(card.get("temperature") or 1.0)
    # The model's own best: called eagerly, and through its compiled predict step (what the worker uses).
    ways = {"eager": model, "compiled": CompiledForward(model)}
    per_batch: dict[str, dict[str, float]] = {way: {} for way in ways}
    for size in batch_sizes:
        batch = rng.uniform(0, 255, size=(size, height, width, channels)).astype(np.float32)
        for way, callable_model in ways.items():
            per_batch[way][str(size)] = _throughput(
                lambda b, m=callable_model: predict_proba(m, b, temperature=temperature), batch, min_seconds=min_seconds
            )
    best_way, best_size = max(
        ((way, size) for way in per_batch for size in per_batch[way]), key=lambda key: per_batch[key[0]][key[1]]
    )
    return {
        "device": device,
        "images_per_second_by_batch": per_batch,
        "ceiling_images_per_second": per_batch[best_way][best_size],
        "ceiling_batch_size": int(best_size),
        "ceiling_call": best_way,
        "rss_mib_tensorflow_only": rss_before,
        "rss_mib_with_model": rss_mib(),
    }


def naive(directory: Path, image_path: Path, samples: int, warm_samples: int) -> dict:
    """What the student prototypes did, inside each request: load the model, ``model.predict`` one image.

    The HTTP request and the database write are left out, which only flatters the baseline.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Only in the probe's own process, after TF_CPP_MIN_LOG_LEVEL (the benchmark imports this module).
    import keras  # noqa: PLC0415

    card = _card(directory)
    data = image_path.read_bytes()

    def handle(model=None):
        model = model or keras.saving.load_model(str(directory / "model.keras"), compile=False)
        image = Image.open(io.BytesIO(data))
        pixels = np.asarray(image.convert("L" if card["color_mode"] == "grayscale" else "RGB"))
        x = to_model_input(pixels, input_size=tuple(card["input_size"]), color_mode=card["color_mode"])
        return model.predict(x[None], verbose=0)

    handle()  # the first import and load are not counted against the baseline
    started = time.perf_counter()
    for _ in range(samples):
        handle()
    per_request = (time.perf_counter() - started) / samples

    result = {
        "load_and_predict_per_request_images_per_second": 1.0 / per_request,
        "load_and_predict_per_request_ms": per_request * 1000,
        "samples": samples,
        "warm_samples": warm_samples,
    }
    if warm_samples:
        # A kinder variant: the model loaded once per web process, model.predict per image in the request.
        model = keras.saving.load_model(str(directory / "model.keras"), compile=False)
        handle(model)
        started = time.perf_counter()
        for _ in range(warm_samples):
            handle(model)
        warm = (time.perf_counter() - started) / warm_samples
        result["loaded_once_predict_per_request_images_per_second"] = 1.0 / warm
        result["loaded_once_predict_per_request_ms"] = warm * 1000
    return result


def multiply_adds(model) -> int:
    """Multiply-adds of one image's forward pass through the convolution and dense layers.

    These layers do nearly all of a CNN's arithmetic, so this ranks models by what one image
    costs to run, which the parameter count does not: a small input with a wide dense layer
    has many parameters and little work.
    """
    import keras  # noqa: PLC0415 - TensorFlow: only in the probe's own process

    total = 0
    for layer in model._flatten_layers(include_self=False):
        if not layer.built or not hasattr(layer, "output"):
            continue
        out = layer.output.shape
        if isinstance(layer, keras.layers.SeparableConv2D):
            kh, kw = layer.kernel_size
            in_channels = layer.input.shape[-1]
            positions = out[1] * out[2]
            total += positions * (kh * kw * in_channels * layer.depth_multiplier)
            total += positions * in_channels * layer.depth_multiplier * out[-1]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += out[1] * out[2] * kh * kw * out[-1]
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            total += out[1] * out[2] * kh * kw * layer.input.shape[-1] // layer.groups * out[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * out[-1]
    return int(total)


def cost(directories: list[Path]) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = {}
    for directory in directories:
        model = load_model(directory / "model.keras")
        out[directory.name] = {"parameters": int(model.count_params()), "multiply_adds": multiply_adds(model)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("forward")
    f.add_argument("model_dir", type=Path)
    f.add_argument("--batch-sizes", default="1,16,64")
    f.add_argument("--min-seconds", type=float, default=2.0)
    n = sub.add_parser("naive")
    n.add_argument("model_dir", type=Path)
    n.add_argument("image", type=Path)
    n.add_argument("--samples", type=int, default=10)
    n.add_argument("--warm-samples", type=int, default=50)
    c = sub.add_parser("cost")
    c.add_argument("model_dirs", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "cost":
        result = cost(args.model_dirs)
    elif args.command == "forward":
        sizes = [int(s) for s in args.batch_sizes.split(",")]
        result = forward(args.model_dir, sizes, args.min_seconds)
    else:
        result = naive(args.model_dir, args.image, args.samples, args.warm_samples)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
