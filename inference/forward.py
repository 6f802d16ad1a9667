"""The forward pass as the worker runs it (no Django here, so the benchmark can use it as is).

The web process imports this module (through the tasks); Keras, TensorFlow and the model code
(OpenCV) load only when a worker first needs them.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


class CompiledForward:
    """A loaded Keras model called through its compiled predict step instead of eagerly.

    Calling a Keras model eagerly dispatches every layer's ops one by one from Python, which
    costs more than the arithmetic for these small CNNs; ``predict_on_batch`` runs one traced
    graph. After two batch sizes the trace is relaxed to any batch size, so warming with two
    sizes means no job ever waits for a trace. Quacks like the model for ``serving.predict_proba``.
    """

    def __init__(self, model):
        self.model = model
        self.inputs = model.inputs
        self.outputs = model.outputs

    def __call__(self, batch, training: bool = False):
        return self.model.predict_on_batch(batch)


_forwards: dict[int, CompiledForward] = {}


def forward_for(keras_model) -> CompiledForward:
    forward = _forwards.get(id(keras_model))
    if forward is None or forward.model is not keras_model:
        forward = _forwards[id(keras_model)] = CompiledForward(keras_model)
    return forward


def _class_scores(tf, out, kind: str, dense):
    """What Grad-CAM differentiates: the logits where they can be reached (see ``serving._score_head``)."""
    if kind == "dense_input":
        out = tf.matmul(out, dense.kernel) + (dense.bias if dense.use_bias else 0.0)
    if kind == "proba":
        out = tf.math.log(tf.clip_by_value(out, 1e-12, 1.0))
    return out


def _weighted_maps(tf, tape, score, features):
    """Grad-CAM's maps on the target layer's grid, (n, h, w, 1): ReLU of the gradient-weighted channels."""
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1, keepdims=True))


def _at_input(tf, maps, size):
    """Maps brought to the input resolution, before scaling."""
    return tf.image.resize(maps, size, method="bilinear")[..., 0]


def heatmaps_at_input(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Maps drawn by ``PredictionPass`` at the input resolution and scaled, as ``CompiledGradcam`` gives them."""
    import tensorflow as tf  # noqa: PLC0415 - TensorFlow: workers only

    if len(maps) == 0:
        return np.zeros((0, *size), dtype=np.float32)
    return _scaled(_at_input(tf, tf.convert_to_tensor(maps, dtype=tf.float32), size).numpy())


def _scaled(cam: np.ndarray) -> np.ndarray:
    """Each map divided by its peak, in [0, 1]; a map with no positive evidence stays zero."""
    n = len(cam)
    peak = cam.reshape(n, -1).max(axis=1).reshape(n, 1, 1)
    cam = np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), 0.0)
    return np.clip(cam, 0.0, 1.0).astype(np.float32)


class CompiledGradcam:
    """Grad-CAM as ``serving.gradcam`` computes it, traced once into a graph.

    ``serving.gradcam`` rebuilds a Keras model for the target layer and runs the gradient
    tape eagerly on every call: about 200 ms for a single 28x28 image on this CPU. Here the
    sub-model is built once and the forward, backward and weighting run as one traced
    function, which is what makes heatmaps cheap enough to follow every batch. Sequential
    models keep the eager path (``serving.gradcam``), which handles their rebuilt graphs.
    """

    def __init__(self, model, layer_name: str | None = None):
        import keras  # noqa: PLC0415 - TensorFlow: workers only
        import tensorflow as tf  # noqa: PLC0415 - TensorFlow: workers only

        from inference.ml.serving import _score_head, find_gradcam_layer  # noqa: PLC0415 - OpenCV: workers only

        self.model = model
        layer = model.get_layer(layer_name or find_gradcam_layer(model))
        head, kind, dense = _score_head(model)
        grad_model = keras.Model(model.inputs, [layer.output, head])

        @tf.function(reduce_retracing=True)
        def cam(inputs, idx):
            with tf.GradientTape() as tape:
                features, out = grad_model(inputs, training=False)
                score = tf.reduce_sum(tf.gather(_class_scores(tf, out, kind, dense), idx, axis=1, batch_dims=1))
            return _at_input(tf, _weighted_maps(tf, tape, score, features), tf.shape(inputs)[1:3])

        self._cam = cam

    def __call__(self, batch, class_indices):
        from inference.ml.serving import _check_batch  # noqa: PLC0415 - OpenCV: workers only

        batch = _check_batch(self.model, batch)
        n = len(batch)
        if n == 0:
            return np.zeros((0, batch.shape[1], batch.shape[2]), dtype=np.float32)
        idx = np.broadcast_to(np.asarray(class_indices, dtype=np.int32), (n,)).copy()
        return _scaled(self._cam(batch, idx).numpy())


@dataclass
class PassResult:
    """What one traced pass over a batch gives: the raw model output, the input check's pooled
    features (one (n, 2c) array per layer), and, when the pass draws heatmaps, each image's top
    class with its Grad-CAM map on the target layer's small grid (``heatmaps_at_input`` finishes
    it; kept small, many can wait in memory for their heatmap task)."""

    proba: np.ndarray
    features: list[np.ndarray]
    heatmaps: np.ndarray | None = None
    heatmap_classes: np.ndarray | None = None


class PredictionPass:
    """A second opinion's whole forward pass as one traced function.

    Computing the input check's features and the heatmap in separate passes ran the network
    two or three times per image, and for a large input that costs more than the prediction:

    - the input check's features are pooled inside the graph (per-channel spatial mean and
      standard deviation, in float64 as ``ood.pool`` does), so full activation maps are never
      copied out to NumPy;
    - the Grad-CAM of the top class comes from the same forward pass: only the backward pass
      from the scores to the target layer (the last feature map) is added. Brought to the input
      resolution by ``heatmaps_at_input``, the maps are ``CompiledGradcam``'s for that class.

    If Grad-CAM cannot be set up or traced on a model, the pass goes on without heatmaps (the
    heatmap task then runs ``gradcam_for`` itself): an explanation never costs a second opinion.
    """

    def __init__(self, model, *, check_layers: Sequence[str] = (), gradcam_layer: str | None = None):
        self.model = model
        self.check_layers = tuple(check_layers)
        self.gradcam_layer = gradcam_layer
        self.heatmaps = False
        self._run = None
        if not _is_sequential(model):
            try:
                self._run = self._build(heatmaps=True)
                self.heatmaps = True
            except (ValueError, KeyError, AttributeError, TypeError):
                logger.warning("The prediction pass of %s draws no heatmaps", model.name, exc_info=True)
        if self._run is None:
            self._run = self._build(heatmaps=False)

    def _build(self, *, heatmaps: bool):
        import keras  # noqa: PLC0415 - TensorFlow: workers only
        import tensorflow as tf  # noqa: PLC0415 - TensorFlow: workers only

        from inference.ml.serving import _score_head, find_gradcam_layer  # noqa: PLC0415 - OpenCV: workers only

        model = self.model
        outputs = [model.outputs[0], *[model.get_layer(name).output for name in self.check_layers]]
        kind = dense = None
        if heatmaps:
            head, kind, dense = _score_head(model)
            outputs += [model.get_layer(self.gradcam_layer or find_gradcam_layer(model)).output, head]
        graph = keras.Model(model.inputs, outputs)
        n_check = len(self.check_layers)

        def pooled(activation):
            activation = tf.cast(activation, tf.float64)
            if activation.shape.rank == 2:
                return activation
            mean = tf.reduce_mean(activation, axis=(1, 2))
            std = tf.sqrt(tf.reduce_mean(tf.square(activation - mean[:, None, None, :]), axis=(1, 2)))
            return tf.concat([mean, std], axis=1)

        @tf.function(reduce_retracing=True)
        def run(inputs):
            with tf.GradientTape() as tape:
                out = graph(inputs, training=False)
                if len(outputs) == 1:
                    out = [out]  # a model of one output gives the tensor itself
                result = {"proba": out[0], "features": [pooled(a) for a in out[1 : 1 + n_check]]}
                if heatmaps:
                    features, head_out = out[1 + n_check], out[2 + n_check]
                    classes = tf.argmax(out[0], axis=1, output_type=tf.int32)
                    scores = _class_scores(tf, head_out, kind, dense)
                    score = tf.reduce_sum(tf.gather(scores, classes, axis=1, batch_dims=1))
            if heatmaps:
                result["maps"] = _weighted_maps(tf, tape, score, features)
                result["classes"] = classes
            return result

        return run

    def __call__(self, batch) -> PassResult:
        from inference.ml.serving import _check_batch  # noqa: PLC0415 - OpenCV: workers only

        batch = _check_batch(self.model, batch)
        try:
            out = self._run(batch)
        except Exception:
            if not self.heatmaps:
                raise
            # Tracing the heatmap part failed; the second opinion must not.
            logger.warning("The prediction pass of %s now draws no heatmaps", self.model.name, exc_info=True)
            self._run, self.heatmaps = self._build(heatmaps=False), False
            out = self._run(batch)
        result = PassResult(
            proba=np.asarray(out["proba"], dtype=np.float64), features=[np.asarray(f) for f in out["features"]]
        )
        if "maps" in out:
            result.heatmaps = out["maps"].numpy()
            result.heatmap_classes = out["classes"].numpy()
        return result


def _is_sequential(model) -> bool:
    import keras  # noqa: PLC0415 - TensorFlow: workers only

    return isinstance(model, keras.Sequential)


_passes: dict[tuple, PredictionPass] = {}


def prediction_pass_for(model, *, check_layers: Sequence[str] = (), gradcam_layer: str | None = None) -> PredictionPass:
    """The traced pass of this loaded model, built once per process."""
    key = (id(model), tuple(check_layers), gradcam_layer or "")
    cached = _passes.get(key)
    if cached is None or cached.model is not model:
        cached = _passes[key] = PredictionPass(model, check_layers=check_layers, gradcam_layer=gradcam_layer)
    return cached


def gradcam_for(model, layer_name: str | None = None):
    """A callable ``(batch, class_indices) -> heatmaps``: compiled, or eager for Sequential models."""
    import keras  # noqa: PLC0415 - TensorFlow: workers only

    key = (id(model), layer_name or "")
    compiled = _gradcams.get(key)
    if compiled is not None and compiled.model is model:
        return compiled
    if isinstance(model, keras.Sequential):
        from inference.ml.serving import gradcam  # noqa: PLC0415 - OpenCV: workers only

        return lambda batch, classes: gradcam(model, batch, classes, layer_name=layer_name)
    compiled = _gradcams[key] = CompiledGradcam(model, layer_name)
    return compiled


_gradcams: dict[tuple[int, str], CompiledGradcam] = {}
