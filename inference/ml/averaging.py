"""Fixed-schedule training helpers: a learning-rate schedule that can run against a
time budget, an exponential moving average of the weights, and checkpoints.

Imports Keras at module level; ``training`` imports this module only when it trains.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import numpy as np


def cosine_lr(progress: float, *, peak: float, warmup: float, floor: float = 0.01) -> float:
    """Linear warm-up from peak/10 over ``warmup`` (a fraction of the run), then cosine to ``floor * peak``."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return peak / 10.0 + (peak - peak / 10.0) * progress / warmup
    rest = (progress - warmup) / max(1.0 - warmup, 1e-9)
    return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * rest)))


class ProgressSchedule(keras.callbacks.Callback):
    """Warm-up + cosine learning rate driven by the share of the run already done.

    The share is the larger of steps done / planned steps and, with a time budget,
    seconds elapsed / budget, so on a busy machine the schedule still decays to its
    floor and training stops inside the budget instead of being cut off at peak rate.
    """

    def __init__(self, *, peak: float, total_steps: int, warmup_steps: int, time_budget_s: float | None = None):
        super().__init__()
        self.peak = float(peak)
        self.total_steps = max(int(total_steps), 1)
        self.warmup = warmup_steps / self.total_steps
        self.time_budget_s = time_budget_s
        self.step = 0
        self.progress = 0.0
        self._started = None

    def on_train_begin(self, logs=None):
        self._started = time.perf_counter()

    def _progress(self) -> float:
        done = self.step / self.total_steps
        if self.time_budget_s:
            done = max(done, (time.perf_counter() - self._started) / self.time_budget_s)
        return min(done, 1.0)

    def on_train_batch_begin(self, batch, logs=None):
        self.progress = self._progress()
        self.model.optimizer.learning_rate = cosine_lr(self.progress, peak=self.peak, warmup=self.warmup)

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self._progress() >= 1.0:
            self.progress = 1.0
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(cosine_lr(self.progress, peak=self.peak, warmup=self.warmup))
            logs["progress"] = round(self.progress, 4)


class WeightAverage(keras.callbacks.Callback):
    """Exponential moving average of every weight of ``network`` (batch-norm statistics too).

    The momentum ramps up as ``min(m, (1 + t) / (10 + t))`` so the early, random weights
    are forgotten quickly. ``apply()`` copies the averages into the network.
    """

    def __init__(self, network, *, momentum: float):
        super().__init__()
        self.network = network
        self.momentum = float(momentum)
        self.updates = 0
        self.averages = None

    def on_train_begin(self, logs=None):
        if self.averages is None:
            self.averages = [np.array(w, dtype=np.float32) for w in self.network.get_weights()]

    def on_train_batch_end(self, batch, logs=None):
        self.updates += 1
        m = min(self.momentum, (1.0 + self.updates) / (10.0 + self.updates))
        for average, value in zip(self.averages, self.network.get_weights(), strict=True):
            average *= m
            average += (1.0 - m) * value

    def apply(self) -> None:
        self.network.set_weights(self.averages)


class Checkpoint(keras.callbacks.Callback):
    """After every epoch, save the averaged network (as a loadable model) and a progress line."""

    def __init__(self, network, averager: WeightAverage, directory: Path):
        super().__init__()
        self.network = network
        self.averager = averager
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        current = self.network.get_weights()
        self.network.set_weights(self.averager.averages)
        self.network.save(self.directory / "ema.keras")
        self.network.set_weights(current)
        line = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        with open(self.directory / "progress.jsonl", "a") as fh:
            fh.write(json.dumps(line) + "\n")


def recalibrate_batch_norm(network, images: np.ndarray, *, batch_size: int = 64, seed: int = 0) -> int:
    """Re-estimate every batch-norm layer's statistics on clean (unaugmented) images.

    The averaged weights never ran with the statistics they carry, and those statistics
    were gathered on augmented images (rotated cells with filled corners, shifted chest
    films), which are not what the model reads in service: a model could rank cases
    well (AUC 0.998) yet put its threshold in the wrong place. One pass over the
    training images with a cumulative average (momentum k/(k+1) at batch k) gives the
    population statistics of the inputs the model will see. Returns the images used.
    """
    norms = [layer for layer in _all_layers(network) if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms or len(images) == 0:
        return 0
    saved = [layer.momentum for layer in norms]
    order = np.random.default_rng(seed).permutation(len(images))
    try:
        for k, start in enumerate(range(0, len(order), batch_size)):
            for layer in norms:
                layer.momentum = k / (k + 1.0)
            network(images[order[start : start + batch_size]], training=True)
    finally:
        for layer, momentum in zip(norms, saved, strict=True):
            layer.momentum = momentum
    return len(order)


def _all_layers(network):
    for layer in network.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
