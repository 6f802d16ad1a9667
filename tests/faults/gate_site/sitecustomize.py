"""On the PYTHONPATH of the fault tests' processes only: registers the gated test model's layer.

Python imports ``sitecustomize`` at start-up. This one waits for Keras to be imported (in a
worker's pool process, after the fork) and then imports ``tests.faults.gate_layer``, so that
Keras can load the gated model. Processes that never import Keras are not affected.
"""

import importlib
import importlib.abc
import importlib.util
import sys


class _RegisterGateAfterKeras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "keras" or "keras" in sys.modules:
            return None
        # Asked for the spec alone too (TensorFlow checks that Keras exists before importing it):
        # so step aside only while finding it, and only once Keras has been executed for good.
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        exec_keras = spec.loader.exec_module

        def exec_then_register(module):
            exec_keras(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            importlib.import_module("tests.faults.gate_layer")

        spec.loader.exec_module = exec_then_register
        return spec


sys.meta_path.insert(0, _RegisterGateAfterKeras())
