"""The gated test model: a small CNN whose forward pass waits at the test's ``Gate`` (see gate.py).

A worker loads it like any model, so its own code runs unchanged; the worker finds the ``Gate``
layer because the fault tests put ``gate_site`` on its PYTHONPATH, which imports this module as
soon as the worker imports Keras.
"""

import os
import time
from pathlib import Path

import keras

# Never hold a worker for ever if a test dies with the gate closed.
LONGEST_WAIT_SECONDS = 300


@keras.saving.register_keras_serializable(package="medportal_tests")
class GateLayer(keras.layers.Layer):
    """Passes its input through once the gate's ``open`` file exists."""

    def __init__(self, directory: str, **kwargs):
        super().__init__(**kwargs)
        self.directory = directory
        self.supports_jit = False  # the wait is Python, which XLA cannot compile

    def call(self, inputs):
        # TensorFlow is loaded already (Keras runs on it); importing it here keeps this module
        # importable while Keras itself is still being imported.
        import tensorflow as tf  # noqa: PLC0415

        passed = tf.py_function(self._wait, [], Tout=tf.float32)
        passed.set_shape(())
        return inputs + 0.0 * passed

    def _wait(self):
        directory = Path(self.directory)
        (directory / f"entered-{os.getpid()}").touch()
        deadline = time.monotonic() + LONGEST_WAIT_SECONDS
        while not (directory / "open").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return 1.0

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "directory": self.directory}


def build_gated_keras_model(path: Path, *, gate_directory: Path) -> Path:
    """A CNN for 128x128 grey images whose every forward pass (and Grad-CAM) waits at the gate."""
    keras.utils.set_random_seed(11)
    inputs = keras.Input((128, 128, 1))
    x = GateLayer(str(gate_directory), name="gate")(inputs)
    x = keras.layers.Rescaling(1 / 255)(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    keras.Model(inputs, outputs).save(path)
    return path
