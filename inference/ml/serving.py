"""Inference helpers for the GPU/CPU worker: loading, calibrated prediction, Grad-CAM.

TensorFlow is imported inside the functions so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import cards
from .calibration import apply_temperature
from .preprocessing import resize_heatmap, to_model_batch

logger = logging.getLogger(__name__)

PREDICT_BATCH_SIZE = 64


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # noqa: PLC0415 - TensorFlow: loaded only once a model is used

    return tf


def configure_devices() -> str:
    """Use every visible GPU with memory growth, else the CPU; returns "GPU" or "CPU".

    Memory growth stops one worker process from reserving the whole card, so several
    models (or workers) can share a GPU. Must run before TensorFlow touches the GPU.
    """
    tf = _tf()
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # Devices already initialised (e.g. a model was loaded first): keep going.
            logger.warning("GPU already initialised; memory growth not changed for %s", gpu.name)
    return "GPU" if gpus else "CPU"


def load_model(path: str | Path):
    """Load a Keras model saved as ``.keras`` or as legacy Keras HDF5 ``.h5``, uncompiled."""
    _tf()
    import keras  # noqa: PLC0415 - TensorFlow: loaded only once a model is used

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise ValueError(f"unsupported model format {path.suffix!r}; use .keras or .h5")
    return keras.saving.load_model(str(path), compile=False)


def model_input_shape(model) -> tuple[int | None, int | None, int | None]:
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4:
        raise ValueError(f"expected an image model with 4-D input, got input shape {shape}")
    return shape[1], shape[2], shape[3]


def model_output_width(model) -> int:
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 2 or shape[-1] is None:
        raise ValueError(f"expected a (batch, classes) output, got {shape}")
    return int(shape[-1])


def _check_batch(model, batch: np.ndarray) -> np.ndarray:
    batch = np.asarray(batch, dtype=np.float32)
    if batch.ndim != 4:
        raise ValueError(f"batch must be (n, h, w, c), got shape {batch.shape}")
    expected = model_input_shape(model)
    for got, want, what in zip(batch.shape[1:], expected, ("height", "width", "channels"), strict=True):
        if want is not None and got != want:
            raise ValueError(f"batch {what} {got} does not match the model's {want}")
    return batch


def raw_proba(model, batch: np.ndarray) -> np.ndarray:
    """The model's own softmax output, in chunks, as float64."""
    batch = _check_batch(model, batch)
    outputs = []
    for start in range(0, len(batch), PREDICT_BATCH_SIZE):
        chunk = batch[start : start + PREDICT_BATCH_SIZE]
        outputs.append(np.asarray(model(chunk, training=False), dtype=np.float64))
    if not outputs:
        return np.zeros((0, model_output_width(model)), dtype=np.float64)
    return as_probabilities(np.concatenate(outputs))


def as_probabilities(proba: np.ndarray) -> np.ndarray:
    """A model's raw output as probabilities: a softmax output as it is, anything else as logits."""
    proba = np.asarray(proba, dtype=np.float64)
    sums = proba.sum(axis=1)
    if (proba < 0).any() or not np.allclose(sums, 1.0, atol=1e-3):
        # Imported models sometimes end in a linear layer; treat the output as logits.
        shifted = proba - proba.max(axis=1, keepdims=True)
        proba = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    return proba


def predict_proba(model, batch: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """Calibrated class probabilities ``softmax(log(p) / T)``; each row sums to 1."""
    return apply_temperature(raw_proba(model, batch), temperature)


def find_gradcam_layer(model) -> str:
    """Name of the last layer with a 4-D (batch, h, w, c) output, i.e. the last feature map."""
    for layer in reversed(model.layers):
        if layer.__class__.__name__ == "InputLayer":
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4:
            return layer.name
    raise ValueError("model has no layer with a 4-D output to use for Grad-CAM")


def _score_head(model):
    """(tensor to differentiate, kind): pre-softmax logits when they can be reached.

    Gradients of a saturated softmax vanish, so Grad-CAM follows the logits: either
    the input of a final softmax Activation, or a final Dense layer's input combined
    with its kernel by hand. Anything else falls back to log-probabilities.
    """
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    act_name = getattr(activation, "__name__", "")
    if last.__class__.__name__ == "Activation" and act_name == "softmax":
        return last.input, "logits", None
    if last.__class__.__name__ == "Dense" and act_name == "softmax":
        return last.input, "dense_input", last
    return model.outputs[0], "proba", None


def _sequential_forward(model, inputs, target, kind):
    """Forward through a Sequential model: (target layer output, logits or probabilities)."""
    import tensorflow as tf  # noqa: PLC0415 - TensorFlow: loaded only once a model is used

    x, features = inputs, None
    last = model.layers[-1]
    for layer in model.layers:
        if layer is last and kind == "dense_input":
            x = tf.matmul(x, layer.kernel) + (layer.bias if layer.use_bias else 0.0)
        elif layer is last and kind == "logits":
            pass  # x already holds the logits entering the final softmax
        else:
            x = layer(x, training=False)
        if layer is target:
            features = x
    if features is None:
        raise ValueError(f"layer {target.name!r} is not part of the model")
    return features, x


def gradcam(
    model,
    batch: np.ndarray,
    class_indices: int | Sequence[int] | np.ndarray,
    *,
    layer_name: str | None = None,
) -> np.ndarray:
    """Grad-CAM heatmaps (n, H, W) at the model input resolution, each scaled to [0, 1].

    One batched forward/backward pass: each image's score depends only on its own
    row (inference mode), so the gradient of the summed scores gives every image's
    gradient at once. A map that is all zero means no positive evidence was found.
    """
    tf = _tf()
    import keras  # noqa: PLC0415 - TensorFlow: loaded only once a model is used

    batch = _check_batch(model, batch)
    n = len(batch)
    idx = np.broadcast_to(np.asarray(class_indices, dtype=np.int32), (n,)).copy()
    width = model_output_width(model)
    if n and (idx.min() < 0 or idx.max() >= width):
        raise ValueError(f"class index out of range for a model with {width} outputs")
    layer = model.get_layer(layer_name or find_gradcam_layer(model))
    height, width_px = batch.shape[1], batch.shape[2]
    if n == 0:
        return np.zeros((0, height, width_px), dtype=np.float32)
    head, kind, dense = _score_head(model)
    inputs = tf.convert_to_tensor(batch)
    with tf.GradientTape() as tape:
        if isinstance(model, keras.Sequential):
            # A reloaded Sequential model rebuilds its graph, so layer.input/output may
            # belong to a stale node; running the layers one by one is always correct.
            features, out = _sequential_forward(model, inputs, layer, kind)
        else:
            grad_model = keras.Model(model.inputs, [layer.output, head])
            features, out = grad_model(inputs, training=False)
            if kind == "dense_input":
                out = tf.matmul(out, dense.kernel) + (dense.bias if dense.use_bias else 0.0)
        if kind == "proba":
            out = tf.math.log(tf.clip_by_value(out, 1e-12, 1.0))
        score = tf.reduce_sum(tf.gather(out, idx, axis=1, batch_dims=1))
    grads = tape.gradient(score, features)
    if grads is None:
        raise ValueError(f"layer {layer.name!r} is not connected to the model output")
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1, keepdims=True))
    cam = tf.image.resize(cam, (height, width_px), method="bilinear")[..., 0].numpy()
    peak = cam.reshape(n, -1).max(axis=1).reshape(n, 1, 1)
    cam = np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), 0.0)
    return np.clip(cam, 0.0, 1.0).astype(np.float32)


@dataclass
class LoadedModel:
    """A model plus its card: everything the worker needs to serve one model version."""

    model: object
    card: dict

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.card["input_size"])  # type: ignore[return-value]

    @property
    def color_mode(self) -> str:
        return self.card["color_mode"]

    @property
    def resize(self) -> str:
        return self.card.get("preprocessing", {}).get("resize", "stretch")

    @property
    def labels(self) -> list[str]:
        return list(self.card["labels"])

    def prepare(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return to_model_batch(images, input_size=self.input_size, color_mode=self.color_mode, resize=self.resize)

    def predict(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Calibrated probabilities (n, n_labels) for uint8 images of any size."""
        return predict_proba(self.model, self.prepare(images), temperature=float(self.card["temperature"]))

    def heatmaps(self, images: Sequence[np.ndarray], class_indices: int | Sequence[int]) -> list[np.ndarray]:
        """Grad-CAM maps in [0, 1], each resized to its own original image's (h, w)."""
        maps = gradcam(
            self.model,
            self.prepare(images),
            class_indices,
            layer_name=self.card.get("gradcam_layer"),
        )
        return [resize_heatmap(m, img.shape[:2], resize=self.resize) for m, img in zip(maps, images, strict=True)]


def load_bundle(path: str | Path) -> LoadedModel:
    """Load a model directory (``model.keras`` + ``card.json``) or a model file with its card."""
    path = Path(path)
    model_path = path / cards.MODEL_FILENAME if path.is_dir() else path
    card = cards.read_card(model_path)
    model = load_model(model_path)
    if model_output_width(model) != len(card["labels"]):
        raise ValueError(
            f"{model_path}: model has {model_output_width(model)} outputs but the card lists "
            f"{len(card['labels'])} labels"
        )
    return LoadedModel(model=model, card=card)
