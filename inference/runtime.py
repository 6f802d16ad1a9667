"""The worker's side of inference: warm models, batched forward passes, heatmaps.

TensorFlow is imported only here and only when a worker first needs it, so the
web process and the Celery parent process stay light (and fork-safe).
"""

import hashlib
import io
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from imaging.pixels import image_pixels
from inference.models import AIModel, Prediction
from inference.services import (
    Claim,
    prediction_record_failure,
    prediction_record_success,
    predictions_claim,
    predictions_release,
    study_refresh_status,
)

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_models: dict[str, object] = {}  # weights sha256 -> loaded keras model
_devices_configured = False


class ModelUnavailable(RuntimeError):
    """The weights could not be fetched right now (storage hiccup): worth another attempt."""


class ModelBroken(RuntimeError):
    """The weights are there but wrong (checksum, format): no retry will help."""


def _configure_devices() -> None:
    global _devices_configured
    if not _devices_configured:
        from inference.ml.serving import configure_devices

        configure_devices()
        _devices_configured = True


def _local_weights(model: AIModel) -> Path:
    """A local copy of the weights, fetched through the storage API and checked against the sha256."""
    cache_dir = Path(settings.MEDPORTAL_MODEL_CACHE_DIR)
    cache_dir.mkdir(parents=True, exist_ok=True)
    suffix = Path(model.weights.name).suffix or ".keras"
    path = cache_dir / f"{model.weights_sha256}{suffix}"
    if path.exists():
        return path
    try:
        with default_storage.open(model.weights.name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as exc:
        raise ModelBroken(f"The weights file {model.weights.name} is missing from storage.") from exc
    except OSError as exc:
        raise ModelUnavailable(f"Could not read the weights of {model}: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.weights_sha256:
        raise ModelBroken(f"The weights of {model} do not match their registered sha256 (got {digest[:12]}…).")
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.replace(path)  # atomic: another process never sees half a file
    return path


def keras_model_for(model: AIModel):
    """The loaded Keras model for this version, loaded once per worker process."""
    cached = _models.get(model.weights_sha256)
    if cached is not None:
        return cached
    with _lock:
        cached = _models.get(model.weights_sha256)
        if cached is not None:
            return cached
        _configure_devices()
        from inference.ml.serving import load_model

        path = _local_weights(model)
        try:
            loaded = load_model(path)
        except Exception as exc:  # Keras raises many types for a bad file
            raise ModelBroken(f"Keras could not load {model}: {exc}") from exc
        _models[model.weights_sha256] = loaded
        logger.info("Loaded %s (%s) into worker %s", model, model.weights_sha256[:12], os.getpid())
        return loaded


def loaded_model_count() -> int:
    return len(_models)


def _heatmap_png(heatmap: np.ndarray, *, width: int, height: int, resize: str) -> bytes:
    """The heatmap on the original image's grid (same aspect ratio) as an 8-bit PNG."""
    from inference.ml.preprocessing import heatmap_to_uint8, resize_heatmap

    resized = resize_heatmap(heatmap, (height, width), resize=resize)
    buffer = io.BytesIO()
    PILImage.fromarray(heatmap_to_uint8(resized)).save(buffer, format="PNG")
    return buffer.getvalue()


def run_batch(*, prediction_id) -> int:
    """Claim a batch starting with this prediction, run it and record every outcome.

    Returns how many predictions this call finished (0 when there was nothing to do).
    """
    claim = predictions_claim(prediction_id=prediction_id)
    if claim is None:
        return 0
    try:
        return _run_claim(claim)
    finally:
        for study_id in {p.image.study_id for p in claim.predictions}:
            study_refresh_status(study_id=study_id)


def _run_claim(claim: Claim) -> int:
    from inference.ml.preprocessing import to_model_input
    from inference.ml.serving import gradcam, predict_proba

    model = claim.model
    resize = (model.preprocessing or {}).get("resize", "stretch")
    try:
        keras_model = keras_model_for(model)
    except ModelUnavailable as exc:
        predictions_release(predictions=claim.predictions, token=claim.token, reason=str(exc))
        raise
    except ModelBroken as exc:
        for prediction in claim.predictions:
            prediction_record_failure(prediction=prediction, token=claim.token, reason=str(exc))
        return len(claim.predictions)

    finished = 0
    ready: list[Prediction] = []
    inputs: list[np.ndarray] = []
    for prediction in claim.predictions:
        try:
            pixels = image_pixels(prediction.image)
            inputs.append(
                to_model_input(
                    pixels,
                    input_size=model.input_size,
                    color_mode=model.color_mode,
                    resize=resize,
                )
            )
            ready.append(prediction)
        except FileNotFoundError:
            finished += prediction_record_failure(
                prediction=prediction, token=claim.token, reason="The image file is missing from storage."
            )
        except Exception as exc:  # a bad image must not sink the rest of the batch
            finished += prediction_record_failure(
                prediction=prediction, token=claim.token, reason=f"The image could not be prepared: {exc}"
            )
    if not ready:
        return finished

    batch = np.stack(inputs).astype(np.float32)
    started = time.perf_counter()
    try:
        probabilities = np.asarray(predict_proba(keras_model, batch, temperature=model.temperature))
    except Exception as exc:
        for prediction in ready:
            finished += prediction_record_failure(
                prediction=prediction, token=claim.token, reason=f"The model failed to run: {exc}"
            )
        return finished
    per_image_ms = (time.perf_counter() - started) * 1000.0 / len(ready)

    heatmaps = None
    try:
        heatmaps = gradcam(
            keras_model,
            batch,
            probabilities.argmax(axis=1),
            layer_name=model.gradcam_layer or None,
        )
    except Exception:
        # The heatmap is an aid; the second opinion stands without it.
        logger.warning("Grad-CAM failed for %s", model, exc_info=True)

    for index, prediction in enumerate(ready):
        heatmap_png = None
        if heatmaps is not None:
            heatmap_png = _heatmap_png(
                heatmaps[index], width=prediction.image.width, height=prediction.image.height, resize=resize
            )
        finished += prediction_record_success(
            prediction=prediction,
            token=claim.token,
            probabilities=probabilities[index].tolist(),
            inference_ms=per_image_ms,
            heatmap_png=heatmap_png,
        )
    return finished
