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
from collections import OrderedDict
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image as PILImage

from imaging.pixels import image_pixels
from imaging.storage import content_name
from inference.claims import (
    Claim,
    prediction_record_failure,
    predictions_claim,
    predictions_claim_next,
    predictions_record_heatmaps,
    predictions_record_successes,
    predictions_release,
)
from inference.dispatch import Outbox
from inference.forward import gradcam_for, heatmaps_at_input, prediction_pass_for
from inference.models import AIModel, Prediction, PredictionStatus
from inference.study_status import studies_refresh_after_batch

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_models: dict[str, object] = {}  # weights sha256 -> loaded keras model
_checks: dict[tuple[str, str], tuple] = {}  # (check sha256, weights sha256) -> (InputCheck, its feature layers)
# The model input of each image just predicted (with the colourfulness of the image as decoded, which
# the input check reads), kept for its heatmap, which usually follows in the same process moments
# later: decoding a large PNG costs far more than the forward pass.
_recent_inputs: OrderedDict[tuple, tuple[np.ndarray, float]] = OrderedDict()
# The Grad-CAM the prediction's own pass drew, (class index, map on the target layer's grid) by
# (prediction, weights): the heatmap task that follows in this process only brings it to the
# image and stores it. A map is a few hundred bytes, so a whole burst's wait here.
_recent_heatmaps: OrderedDict[tuple, tuple[int, np.ndarray]] = OrderedDict()
HEATMAPS_KEPT = 4096
_devices_configured = False


class ModelUnavailable(RuntimeError):
    """The weights could not be fetched right now (storage hiccup): worth another attempt."""


class ModelBroken(RuntimeError):
    """The weights are there but wrong (checksum, format): no retry will help."""


def _configure_devices() -> None:
    global _devices_configured
    if not _devices_configured:
        from inference.ml.serving import configure_devices  # noqa: PLC0415 - OpenCV/TensorFlow: workers only

        configure_devices()
        _devices_configured = True


def _local_weights(model: AIModel) -> Path:
    """A local copy of the weights, fetched through the storage API and checked against the sha256."""
    return _local_copy(model, name=model.weights.name, sha256=model.weights_sha256, what="weights")


def _local_copy(model: AIModel, *, name: str, sha256: str, what: str) -> Path:
    cache_dir = Path(settings.MEDPORTAL_MODEL_CACHE_DIR)
    cache_dir.mkdir(parents=True, exist_ok=True)
    suffix = Path(name).suffix or ".keras"
    path = cache_dir / f"{sha256}{suffix}"
    if path.exists():
        return path
    try:
        with default_storage.open(name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as exc:
        raise ModelBroken(f"The {what} file {name} is missing from storage.") from exc
    except OSError as exc:
        raise ModelUnavailable(f"Could not read the {what} of {model}: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelBroken(f"The {what} of {model} do not match their registered sha256 (got {digest[:12]}…).")
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
        from inference.ml.serving import load_model  # noqa: PLC0415 - OpenCV/TensorFlow: workers only

        path = _local_weights(model)
        try:
            loaded = load_model(path)
        except Exception as exc:  # Keras raises many types for a bad file
            raise ModelBroken(f"Keras could not load {model}: {exc}") from exc
        _models[model.weights_sha256] = loaded
        logger.info("Loaded %s (%s) into worker %s", model, model.weights_sha256[:12], os.getpid())
        return loaded


def input_check_for(model: AIModel, keras_model):
    """(input check, names of the layers it reads) when the model's card declares a check, else None.

    The check's file was stored beside the weights at registration, under its sha256.
    """
    entry = (model.card or {}).get("input_check")
    if not entry:
        return None
    key = (entry["sha256"], model.weights_sha256)
    cached = _checks.get(key)
    if cached is None:
        from inference.ml.ood import InputCheck, feature_layers  # noqa: PLC0415 - TensorFlow: workers only

        path = _local_copy(
            model, name=content_name("models", entry["sha256"], ".npz"), sha256=entry["sha256"], what="input check"
        )
        try:
            check = InputCheck.load(path, sha256=entry["sha256"])
        except (OSError, ValueError, KeyError) as exc:
            raise ModelBroken(f"The input check of {model} could not be read: {exc}") from exc
        try:
            layers = tuple(feature_layers(keras_model))
        except ValueError as exc:
            raise ModelBroken(f"The input check of {model} has no layer to read: {exc}") from exc
        cached = _checks[key] = (check, layers)
    return cached


def prediction_pass(model: AIModel, keras_model, checked):
    """The one traced pass a batch of this model runs: probabilities, the check's features, heatmaps."""
    return prediction_pass_for(
        keras_model, check_layers=checked[1] if checked else (), gradcam_layer=model.gradcam_layer or None
    )


def _remember(cache: OrderedDict, key, value, *, limit: int | None = None) -> None:
    cache[key] = value
    while len(cache) > (limit or 4 * settings.MEDPORTAL_BATCH_SIZE):
        cache.popitem(last=False)


def unfamiliar_reason(model: AIModel, *, colour_side: int = 0, trained_in_grey: bool = False) -> str:
    """Why the input check gave no label; ``colour_side`` is the colour rule's (``InputCheck.colour_side``)."""
    kind = ((model.card or {}).get("input_check") or {}).get("image_kind") or model.display_name
    if colour_side > 0 and trained_in_grey:
        return (
            f"Not run: this image is in colour; the {kind} images this model was trained on are greyscale, "
            "so no label was given."
        )
    if colour_side > 0:
        return (
            f"Not run: this image is more strongly coloured than the {kind} images this model was trained on, "
            "so no label was given."
        )
    if colour_side < 0:
        return (
            f"Not run: this image is greyscale or nearly so; the {kind} images this model was trained on are "
            "in colour, so no label was given."
        )
    return f"Not run: this image does not look like the {kind} images this model was trained on, so no label was given."


def loaded_model_count() -> int:
    return len(_models)


def _heatmap_png(heatmap: np.ndarray, *, width: int, height: int, resize: str) -> bytes:
    """The heatmap on the original image's grid (same aspect ratio) as an 8-bit PNG."""
    from inference.ml.preprocessing import heatmap_to_uint8, resize_heatmap  # noqa: PLC0415 - OpenCV/TensorFlow: workers only

    resized = resize_heatmap(heatmap, (height, width), resize=resize)
    buffer = io.BytesIO()
    # A heatmap is smooth: the fastest deflate level costs a third of the default's time for
    # a file about a third larger.
    PILImage.fromarray(heatmap_to_uint8(resized)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def run_batch(*, prediction_id, outbox: Outbox | None = None) -> int:
    """Claim a batch starting with this prediction, run it, then keep draining that model's queue.

    Returns how many predictions this call finished (0 when there was nothing to do). The
    follow-up tasks it calls for (heatmaps, released work) are added to ``outbox`` for the
    caller to send; even when it raises, what it added so far stands.
    """
    outbox = Outbox() if outbox is None else outbox
    claim = predictions_claim(prediction_id=prediction_id)
    if claim is None:
        return 0
    finished = _run_and_refresh(claim, outbox)
    # The model is warm and the queue may be deep: take the next batches straight from the
    # database rather than one broker round trip per task, for a bounded time so that other
    # models' work on this queue is not starved.
    # Well inside the task's time limit, which covers the whole loop.
    budget = min(settings.MEDPORTAL_DRAIN_SECONDS, settings.MEDPORTAL_TASK_TIME_LIMIT / 4)
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        claim = predictions_claim_next(model_id=claim.model.id)
        if claim is None:
            break
        finished += _run_and_refresh(claim, outbox)
    return finished


def _run_and_refresh(claim: Claim, outbox: Outbox) -> int:
    try:
        return _run_claim(claim, outbox)
    finally:
        # Written results refreshed their studies as they committed; failures and releases did not.
        studies_refresh_after_batch(
            study_ids={p.image.study_id for p in claim.predictions if p.status != PredictionStatus.SUCCEEDED}
        )


def _model_inputs(
    predictions: list[Prediction], model: AIModel, token, *, reuse: bool = False
) -> tuple[list[Prediction], np.ndarray, int, list[float]]:
    """Decode and resize each image; a bad one fails alone.

    Returns (ready, batch, failed count, colourfulness of each ready image as decoded). A
    prediction's input is kept for a while; with ``reuse`` (the heatmap that follows) it is
    taken from there instead of decoding the image again.
    """
    from inference.ml.ood import colourfulness  # noqa: PLC0415 - OpenCV/TensorFlow: workers only
    from inference.ml.preprocessing import to_model_input  # noqa: PLC0415 - OpenCV/TensorFlow: workers only

    resize = (model.preprocessing or {}).get("resize", "stretch")
    failed = 0
    ready: list[Prediction] = []
    inputs: list[np.ndarray] = []
    colours: list[float] = []
    for prediction in predictions:
        key = (prediction.image_id, model.weights_sha256)
        try:
            cached = _recent_inputs.pop(key, None) if reuse else None
            if cached is None:
                pixels = image_pixels(prediction.image)
                model_input = to_model_input(
                    pixels, input_size=model.input_size, color_mode=model.color_mode, resize=resize
                )
                # A grey model's input has lost the image's colour; the check reads it here.
                cached = (model_input, colourfulness(pixels))
                if not reuse:
                    _remember(_recent_inputs, key, cached)
            inputs.append(cached[0])
            colours.append(cached[1])
            ready.append(prediction)
        except FileNotFoundError:
            if token is not None:
                failed += prediction_record_failure(
                    prediction=prediction, token=token, reason="The image file is missing from storage."
                )
        except Exception as exc:  # a bad image must not sink the rest of the batch
            if token is not None:
                failed += prediction_record_failure(
                    prediction=prediction, token=token, reason=f"The image could not be prepared: {exc}"
                )
    batch = np.stack(inputs).astype(np.float32) if inputs else np.zeros((0,), dtype=np.float32)
    return ready, batch, failed, colours


def _run_claim(claim: Claim, outbox: Outbox) -> int:
    from inference.ml.calibration import apply_temperature  # noqa: PLC0415 - workers only
    from inference.ml.serving import as_probabilities  # noqa: PLC0415 - OpenCV/TensorFlow: workers only

    model = claim.model
    try:
        keras_model = keras_model_for(model)
    except ModelUnavailable as exc:
        outbox.predictions += predictions_release(predictions=claim.predictions, token=claim.token, reason=str(exc))
        raise
    except ModelBroken as exc:
        for prediction in claim.predictions:
            prediction_record_failure(prediction=prediction, token=claim.token, reason=str(exc))
        return len(claim.predictions)

    ready, batch, finished, colours = _model_inputs(claim.predictions, model, claim.token)
    if not ready:
        return finished

    started = time.perf_counter()
    try:
        checked = input_check_for(model, keras_model)
    except ModelUnavailable as exc:
        outbox.predictions += predictions_release(predictions=ready, token=claim.token, reason=str(exc))
        raise
    except ModelBroken as exc:
        for prediction in ready:
            finished += prediction_record_failure(prediction=prediction, token=claim.token, reason=str(exc))
        return finished
    try:
        # One forward pass gives the probabilities, the features the check reads and the heatmaps.
        result = prediction_pass(model, keras_model, checked)(batch)
        if checked is None:
            probabilities = apply_temperature(as_probabilities(result.proba), model.temperature)
        else:
            probabilities = apply_temperature(result.proba, model.temperature)
            check = checked[0]
            refused = check.refuse(result.features, batch, colours)
            sides = check.colour_side(colours)
            for prediction, out, side in zip(ready, refused, sides, strict=True):
                if out:
                    reason = unfamiliar_reason(model, colour_side=int(side), trained_in_grey=check.trained_in_grey)
                    finished += prediction_record_failure(prediction=prediction, token=claim.token, reason=reason)
            keep = ~refused
            ready = [p for p, ok in zip(ready, keep, strict=True) if ok]
            probabilities = probabilities[keep]
            if result.heatmaps is not None:
                result.heatmaps, result.heatmap_classes = result.heatmaps[keep], result.heatmap_classes[keep]
            if not ready:
                return finished
    except Exception as exc:
        for prediction in ready:
            finished += prediction_record_failure(
                prediction=prediction, token=claim.token, reason=f"The model failed to run: {exc}"
            )
        return finished
    per_image_ms = (time.perf_counter() - started) * 1000.0 / len(ready)
    if result.heatmaps is not None:
        for prediction, index, heatmap in zip(ready, result.heatmap_classes, result.heatmaps, strict=True):
            key = (prediction.image_id, model.weights_sha256)
            _remember(
                _recent_heatmaps, (prediction.id, model.weights_sha256), (int(index), heatmap), limit=HEATMAPS_KEPT
            )
            _recent_inputs.pop(key, None)  # its heatmap no longer needs the input

    # One statement and one commit for the whole batch: the second opinions appear together.
    written = predictions_record_successes(
        token=claim.token,
        results=[(prediction, probabilities[index].tolist()) for index, prediction in enumerate(ready)],
        inference_ms=per_image_ms,
    )
    for prediction in written:
        logger.info("Prediction %s succeeded (claim %s)", prediction.id, claim.token)
    # Grad-CAM costs several forward passes; it follows as its own task, behind the queued
    # second opinions, so it never delays one.
    outbox.heatmaps += [(p.id, model.queue) for p in written]
    return finished + len(written)


def run_heatmaps(*, prediction_ids) -> int:
    """Compute and store the Grad-CAM heatmap of succeeded predictions that have none. Safe to run twice.

    Other predictions of the same model still waiting for their heatmap join the batch (up to
    the batch size), so heatmaps sent one image at a time during a burst run together.
    """
    without_heatmap = Prediction.objects.filter(status=PredictionStatus.SUCCEEDED, heatmap="").select_related(
        "model", "image"
    )
    pending = list(without_heatmap.filter(id__in=prediction_ids))
    by_model: dict = {}
    for prediction in pending:
        by_model.setdefault(prediction.model_id, []).append(prediction)
    recent = timezone.now() - timedelta(seconds=settings.MEDPORTAL_HEATMAP_RETRY_WINDOW)
    for model_id, predictions in by_model.items():
        room = settings.MEDPORTAL_BATCH_SIZE - len(predictions)
        if room > 0:
            predictions += list(
                without_heatmap.filter(model_id=model_id, finished_at__gte=recent)
                .exclude(id__in=[p.id for p in predictions])
                .order_by("finished_at")[:room]
            )
    heatmaps = []
    for predictions in by_model.values():
        model = predictions[0].model
        resize = (model.preprocessing or {}).get("resize", "stretch")
        drawn, maps = _drawn_heatmaps(predictions, model)
        if len(drawn) < len(predictions):
            try:
                drawn, maps = _heatmaps_computed(predictions, model, drawn, maps)
            except ModelBroken:
                logger.warning("No heatmaps for %s: the model cannot be loaded", model, exc_info=True)
        for prediction, heatmap in zip(drawn, maps, strict=True):
            png = _heatmap_png(heatmap, width=prediction.image.width, height=prediction.image.height, resize=resize)
            heatmaps.append((prediction, png))
    return predictions_record_heatmaps(heatmaps=heatmaps) if heatmaps else 0


def _drawn_heatmaps(predictions: list[Prediction], model: AIModel) -> tuple[list[Prediction], list[np.ndarray]]:
    """The heatmaps their prediction's own pass drew in this process, for the class each was given."""
    labels = list(model.labels)
    drawn, maps = [], []
    for prediction in predictions:
        entry = _recent_heatmaps.pop((prediction.id, model.weights_sha256), None)
        if entry is not None and prediction.label in labels and entry[0] == labels.index(prediction.label):
            drawn.append(prediction)
            maps.append(entry[1])
    if not drawn:
        return [], []
    return drawn, list(heatmaps_at_input(np.stack(maps), (model.input_height, model.input_width)))


def _heatmaps_computed(
    predictions: list[Prediction], model: AIModel, drawn: list[Prediction], maps: list[np.ndarray]
) -> tuple[list[Prediction], list[np.ndarray]]:
    """Add Grad-CAM run afresh for the predictions without a drawn heatmap (another process ran them)."""
    rest = [p for p in predictions if p not in drawn]
    keras_model = keras_model_for(model)
    ready, batch, _, _ = _model_inputs(rest, model, None, reuse=True)
    if not ready:
        return drawn, maps
    try:
        classes = [list(model.labels).index(p.label) for p in ready]
        computed = gradcam_for(keras_model, model.gradcam_layer or None)(batch, classes)
    except Exception:
        # The heatmap is an aid; the second opinion stands without it.
        logger.warning("Grad-CAM failed for %s", model, exc_info=True)
        return drawn, maps
    return drawn + ready, maps + list(computed)


def warm_models(*, queues: list[str] | None = None) -> int:
    """Load every active model (of these queues) and run it once, so that no job pays for a cold start.

    The first forward pass and the first Grad-CAM of a Keras model build kernels and graphs;
    doing both here keeps them out of the first upload's latency.
    """
    models = AIModel.objects.active()
    if queues:
        models = models.filter(queue__in=queues)
    warmed = 0
    for model in models:
        try:
            keras_model = keras_model_for(model)
        except (ModelUnavailable, ModelBroken):
            logger.warning("Could not warm %s; it will be loaded on first use", model, exc_info=True)
            continue
        channels = 1 if model.color_mode == "grayscale" else 3
        try:
            checked = input_check_for(model, keras_model)
        except (ModelUnavailable, ModelBroken):
            logger.warning("Could not load the input check of %s", model, exc_info=True)
            checked = None
        for size in sorted({1, 2, settings.MEDPORTAL_BATCH_SIZE}):
            batch = np.zeros((size, model.input_height, model.input_width, channels), dtype=np.float32)
            prediction_pass(model, keras_model, checked)(batch)
        try:
            heatmaps = gradcam_for(keras_model, model.gradcam_layer or None)
            for size in sorted({1, 2, settings.MEDPORTAL_BATCH_SIZE}):
                heatmaps(batch[:size], [0] * size)
        except Exception:
            logger.warning("Grad-CAM does not run for %s", model, exc_info=True)
        warmed += 1
    logger.info("Warmed %d model(s) in worker %s", warmed, os.getpid())
    return warmed
