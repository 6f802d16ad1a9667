"""The forward pass as the worker runs it (no Django here, so the benchmark can use it as is).

The web process imports this module (through the tasks); Keras, TensorFlow and the model code
(OpenCV) load only when a worker first needs them.
"""

import numpy as np


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

        def scores(out):
            if kind == "dense_input":
                out = tf.matmul(out, dense.kernel) + (dense.bias if dense.use_bias else 0.0)
            if kind == "proba":
                out = tf.math.log(tf.clip_by_value(out, 1e-12, 1.0))
            return out

        @tf.function(reduce_retracing=True)
        def cam(inputs, idx):
            with tf.GradientTape() as tape:
                features, out = grad_model(inputs, training=False)
                score = tf.reduce_sum(tf.gather(scores(out), idx, axis=1, batch_dims=1))
            grads = tape.gradient(score, features)
            weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
            maps = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1, keepdims=True))
            return tf.image.resize(maps, tf.shape(inputs)[1:3], method="bilinear")[..., 0]

        self._cam = cam

    def __call__(self, batch, class_indices):
        from inference.ml.serving import _check_batch  # noqa: PLC0415 - OpenCV: workers only

        batch = _check_batch(self.model, batch)
        n = len(batch)
        if n == 0:
            return np.zeros((0, batch.shape[1], batch.shape[2]), dtype=np.float32)
        idx = np.broadcast_to(np.asarray(class_indices, dtype=np.int32), (n,)).copy()
        cam = self._cam(batch, idx).numpy()
        peak = cam.reshape(n, -1).max(axis=1).reshape(n, 1, 1)
        cam = np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), 0.0)
        return np.clip(cam, 0.0, 1.0).astype(np.float32)


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
