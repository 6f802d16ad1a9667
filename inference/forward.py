"""The forward pass as the worker runs it (no Django here, so the benchmark can use it as is)."""


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
