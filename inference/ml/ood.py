"""Input check: does an image look like the images a model was trained on?

A classifier answers for any input, so every shipped model carries a check built from
its own training data that is run before a label is given. It combines distances:

- **features**, one per residual stage of the network: the Mahalanobis distance of the
  stage's activations, pooled to a per-channel spatial mean and standard deviation and
  square-rooted to tame their skew, to the nearest class mean, with one covariance
  shared by the classes and shrunk towards its diagonal (Lee et al., NeurIPS 2018,
  feature ensemble without input perturbation). Early stages see intensity and
  texture, so noise, blank and saturated images and other modalities land far away
  even where the last stage happens to map them near a class;
- **pixel statistics**: an image with no contrast (blank), almost entirely at the top
  of the range (saturated), or with any simple pixel statistic (``input_statistics``:
  brightness, contrast, clipped pixels, edge and high-frequency energy, colour) outside
  the range seen in training, widened by a quarter of that range, is refused outright,
  whatever its features. Pixel noise is caught here: its high-frequency energy is far
  beyond any medical image's, while a network may map it close to a class;
- **colour**: the colourfulness of the image as uploaded (``colourfulness``: how far
  apart its colour channels are, before a grey model turns it to grey) outside the
  range of the training images is refused outright. A grey model's network never sees
  colour, and a dermoscopy photograph or a stained smear reduced to grey can land among
  its chest films; a colour model is refused a grey film the same way. The range runs
  from half the least colourful training image (a colour set's lower bound widened by a
  quarter of its span would fall below zero and let grey images through) to the most
  colourful one plus a quarter of the span, and at least 0.02 above it, so that images
  of a grey set, whose range has no width, still allow a faint tint.

Each distance is divided by its 99th percentile on the validation images, the score is
the largest of these ratios, and an image is refused when the score exceeds
``threshold``. A Gaussian on the pixel statistics was tried as a further distance and
lowered the AUROC on two of three models, so the statistics only serve the range rule.
Parameters are stored as ``ood.npz`` beside the weights.

NumPy only, except ``feature_model`` / ``features_and_proba`` which use the Keras model.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .metrics import binary_auc

OOD_FILENAME = "ood.npz"
SHRINKAGE = 0.1
FORMAT_VERSION = 2  # 2 adds the colour rule
READABLE_VERSIONS = (1, 2)


def input_statistics(batch: np.ndarray) -> np.ndarray:
    """Per-image pixel statistics of a model-input batch (n, h, w, c) with values 0..255.

    Grayscale batches give 10 columns, RGB batches 14 (colour cues added).
    """
    x = np.asarray(batch, dtype=np.float32) / 255.0
    if x.ndim != 4:
        raise ValueError(f"expected (n, h, w, c), got shape {x.shape}")
    # Reductions over the short channel axis are slow in NumPy (for a colour batch they took most of
    # the time); these give the same values as ``x.mean(axis=-1)``, ``x.max(axis=-1)`` and so on.
    channels = [x[..., k] for k in range(x.shape[-1])]
    gray = sum(channels[1:], channels[0]) / len(channels)
    flat = gray.reshape(len(gray), -1)
    std = flat.std(axis=1)
    dx = np.abs(np.diff(gray, axis=2)).mean(axis=(1, 2))
    dy = np.abs(np.diff(gray, axis=1)).mean(axis=(1, 2))
    lap = np.abs(
        4 * gray[:, 1:-1, 1:-1] - gray[:, :-2, 1:-1] - gray[:, 2:, 1:-1] - gray[:, 1:-1, :-2] - gray[:, 1:-1, 2:]
    ).mean(axis=(1, 2))
    q05, q50, q95 = np.quantile(flat, [0.05, 0.5, 0.95], axis=1)
    columns = [
        flat.mean(axis=1),
        std,
        (flat < 0.02).mean(axis=1),
        (flat > 0.98).mean(axis=1),
        dx + dy,
        # Pixel noise has high Laplacian energy relative to its contrast; anatomy does not.
        lap / (std + 0.02),
        q05,
        q50,
        q95,
        np.log(std + 1e-3),
    ]
    if x.shape[-1] == 3:
        chroma = np.maximum(np.maximum(channels[0], channels[1]), channels[2]) - np.minimum(
            np.minimum(channels[0], channels[1]), channels[2]
        )
        columns += [
            chroma.mean(axis=(1, 2)),
            chroma.std(axis=(1, 2)),
            (x[..., 0] - x[..., 1]).mean(axis=(1, 2)),
            (x[..., 2] - x[..., 1]).mean(axis=(1, 2)),
        ]
    return np.stack(columns, axis=1).astype(np.float64)


@dataclass
class Gaussian:
    """Class-conditional means with one shared, shrunk covariance (as its inverse)."""

    means: np.ndarray  # (k, d)
    precision: np.ndarray  # (d, d)

    @classmethod
    def fit(cls, x: np.ndarray, labels: np.ndarray | None = None, *, shrinkage: float = SHRINKAGE) -> Gaussian:
        x = np.asarray(x, dtype=np.float64)
        labels = np.zeros(len(x), dtype=int) if labels is None else np.asarray(labels, dtype=int)
        classes = np.unique(labels)
        means = np.stack([x[labels == c].mean(axis=0) for c in classes])
        centred = x - means[np.searchsorted(classes, labels)]
        cov = centred.T @ centred / max(len(x) - len(classes), 1)
        # Shrink towards the diagonal: feature dimensions can outnumber the images of
        # small data sets, and dead (always-zero) activations make cov singular.
        diag = np.diag(np.diag(cov))
        cov = (1.0 - shrinkage) * cov + shrinkage * diag
        cov += np.eye(len(cov)) * (1e-6 * max(float(np.trace(cov)) / len(cov), 1e-12))
        return cls(means=means, precision=np.linalg.inv(cov))

    def distance(self, x: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest mean, (n,)."""
        x = np.asarray(x, dtype=np.float64)
        best = np.full(len(x), np.inf)
        for mean in self.means:
            d = x - mean
            best = np.minimum(best, np.einsum("ij,jk,ik->i", d, self.precision, d))
        return np.maximum(best, 0.0)


DEGENERATE_SCORE = 1e6
BLANK_STD = 1.0 / 255.0  # less than one grey level of contrast
SATURATED_SHARE = 0.95  # share of pixels at >= 98 % of full scale


RANGE_WIDENING = 0.25


def degenerate(batch: np.ndarray, statistics: np.ndarray | None = None) -> np.ndarray:
    """(n,) True for blank (no contrast) or saturated images of a model-input batch."""
    stats = input_statistics(batch) if statistics is None else statistics
    return (stats[:, 1] < BLANK_STD) | (stats[:, 3] > SATURATED_SHARE)


def statistics_range(train_batch: np.ndarray, *, widening: float = RANGE_WIDENING) -> np.ndarray:
    """(2, k) lower and upper bounds: the training range of each statistic, widened on both sides."""
    stats = input_statistics(train_batch)
    lo, hi = stats.min(axis=0), stats.max(axis=0)
    span = hi - lo
    return np.stack([lo - widening * span, hi + widening * span])


COLOUR_POINTS = 64  # grid points per side that colourfulness samples
COLOUR_FLOOR = 0.02  # least room above the most colourful training image
COLOUR_LOWER = 0.5  # share of the least colourful training image still accepted


def colourfulness(pixels: np.ndarray) -> float:
    """Mean over pixels of (largest - smallest colour channel) / 255: 0 for grey, up to 1.

    ``pixels`` is an image as decoded (HxW or HxWx1 is grey; a fourth, alpha channel is
    ignored) with values 0..255. It is read on a grid of at most ``COLOUR_POINTS`` points
    per side, so a large photograph costs no more than a thumbnail.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 1):
        return 0.0
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4) or not pixels.size:
        raise ValueError(f"expected HxW, HxWx1, HxWx3 or HxWx4 pixels, got shape {pixels.shape}")
    step_y = -(-pixels.shape[0] // COLOUR_POINTS)
    step_x = -(-pixels.shape[1] // COLOUR_POINTS)
    grid = pixels[::step_y, ::step_x, :3].astype(np.float32)
    spread = np.maximum(np.maximum(grid[..., 0], grid[..., 1]), grid[..., 2]) - np.minimum(
        np.minimum(grid[..., 0], grid[..., 1]), grid[..., 2]
    )
    return float(spread.mean() / 255.0)


_colourfulness = colourfulness  # for the methods whose argument of that name hides it


def colour_range(train_colourfulness) -> tuple[np.ndarray, np.ndarray]:
    """(accepted lo, hi) and (least, most) colourfulness of the training images."""
    values = np.asarray(train_colourfulness, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    accepted = [COLOUR_LOWER * low, high + max(RANGE_WIDENING * (high - low), COLOUR_FLOOR)]
    return np.array(accepted), np.array([low, high])


@dataclass
class InputCheck:
    """One Gaussian per feature layer, their validation scales and the refusal threshold."""

    layers: list[Gaussian]
    scales: list[float]
    threshold: float
    pixel_range: np.ndarray | None = None  # (2, k) bounds of input_statistics, or None
    colour_range: np.ndarray | None = None  # (2,) accepted colourfulness of the raw image, or None
    colour_seen: np.ndarray | None = None  # (2,) least and most colourful training image

    @property
    def trained_in_grey(self) -> bool:
        """Every training image was grey (so any colour is news to the model)."""
        return self.colour_seen is not None and float(self.colour_seen[1]) == 0.0

    def colour_side(self, colourfulness, batch: np.ndarray | None = None) -> np.ndarray:
        """(n,) -1 for less colour than the training images allow, +1 for more, 0 within.

        ``colourfulness`` is that of each image as decoded; without it (None) the model
        input ``batch`` stands in, which shows no colour for a grey model. All 0 without
        a colour rule (a check of the first format).
        """
        if colourfulness is None:
            if batch is None:
                raise ValueError("colour_side needs the images' colourfulness or their model-input batch")
            colourfulness = [_colourfulness(x) for x in np.asarray(batch)]
        values = np.asarray(colourfulness, dtype=np.float64).reshape(-1)
        if self.colour_range is None:
            return np.zeros(len(values), dtype=int)
        lo, hi = float(self.colour_range[0]), float(self.colour_range[1])
        return np.where(values < lo, -1, np.where(values > hi, 1, 0))

    def pixel_outliers(self, batch: np.ndarray) -> np.ndarray:
        """(n,) True for blank or saturated images and images whose pixel statistics leave the range."""
        stats = input_statistics(batch)
        out = degenerate(batch, stats)
        if self.pixel_range is not None:
            out |= ((stats < self.pixel_range[0]) | (stats > self.pixel_range[1])).any(axis=1)
        return out

    def layer_scores(self, features: list[np.ndarray]) -> np.ndarray:
        """(n, layers) distances, each divided by its validation 99th percentile."""
        if len(features) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} feature layers, got {len(features)}")
        columns = [g.distance(_transform(f)) for g, f in zip(self.layers, features, strict=True)]
        return np.stack(columns, axis=1) / np.asarray(self.scales)

    def scores(self, features: list[np.ndarray], batch: np.ndarray, colourfulness=None) -> np.ndarray:
        """Larger is less like the training images; > ``threshold`` means refuse.

        ``batch`` is the model-input batch the features came from (for the pixel rule),
        ``colourfulness`` that of each image as decoded (for the colour rule; see ``colour_side``).
        """
        scores = self.layer_scores(features).max(axis=1)
        outright = self.pixel_outliers(batch) | (self.colour_side(colourfulness, batch) != 0)
        return np.where(outright, DEGENERATE_SCORE, scores)

    def refuse(self, features: list[np.ndarray], batch: np.ndarray, colourfulness=None) -> np.ndarray:
        return self.scores(features, batch, colourfulness) > self.threshold

    # Storage ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        arrays = {
            "format_version": np.array(FORMAT_VERSION),
            "n_layers": np.array(len(self.layers)),
            "scales": np.asarray(self.scales, dtype=np.float64),
            "threshold": np.array(self.threshold),
        }
        for i, g in enumerate(self.layers):
            arrays[f"layer{i}_means"] = g.means.astype(np.float32)
            arrays[f"layer{i}_precision"] = g.precision.astype(np.float32)
        if self.pixel_range is not None:
            arrays["pixel_range"] = np.asarray(self.pixel_range, dtype=np.float64)
        if self.colour_range is not None:
            arrays["colour_range"] = np.asarray(self.colour_range, dtype=np.float64)
            arrays["colour_seen"] = np.asarray(self.colour_seen, dtype=np.float64)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    def save(self, path: str | Path) -> str:
        """Write the check; returns the file's sha256 (pinned in the model card)."""
        data = self.to_bytes()
        Path(path).write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def load(cls, path: str | Path, *, sha256: str | None = None) -> InputCheck:
        data = Path(path).read_bytes()
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"{path}: sha256 does not match the model card")
        with np.load(io.BytesIO(data)) as arrays:
            if int(arrays["format_version"]) not in READABLE_VERSIONS:
                raise ValueError(f"{path}: unsupported input-check format {int(arrays['format_version'])}")
            layers = [
                Gaussian(arrays[f"layer{i}_means"].astype(np.float64), arrays[f"layer{i}_precision"].astype(np.float64))
                for i in range(int(arrays["n_layers"]))
            ]
            return cls(
                layers=layers,
                scales=[float(v) for v in arrays["scales"]],
                threshold=float(arrays["threshold"]),
                pixel_range=arrays.get("pixel_range"),
                colour_range=arrays.get("colour_range"),
                colour_seen=arrays.get("colour_seen"),
            )


def _transform(features: np.ndarray) -> np.ndarray:
    # Pooled ReLU activations are non-negative and right-skewed; the square root makes
    # them closer to the Gaussian the distance assumes.
    return np.sqrt(np.maximum(np.asarray(features, dtype=np.float64), 0.0))


def fit_check(
    train_features: list[np.ndarray],
    train_labels: np.ndarray,
    val_features: list[np.ndarray],
    val_batch: np.ndarray,
    *,
    train_batch: np.ndarray | None = None,
    train_colourfulness=None,
    val_colourfulness=None,
    margin: float = 1.5,
    quantile: float = 0.995,
) -> InputCheck:
    """Fit the distances on training images, scale and threshold them on validation images.

    The threshold is ``margin`` times the ``quantile`` of the validation scores, so
    (with ``margin`` > 1) well under 1 % of the validation images are refused and
    images close to the edge of the training distribution are still read. With
    ``train_batch`` (the training images at model input) the pixel-statistics range rule is on;
    with ``train_colourfulness`` (of the training images as decoded) the colour rule, which
    then reads ``val_colourfulness`` for the validation images.
    """
    layers = [Gaussian.fit(_transform(f), train_labels) for f in train_features]
    pixel_range = statistics_range(train_batch) if train_batch is not None else None
    check = InputCheck(layers=layers, scales=[1.0] * len(layers), threshold=1.0, pixel_range=pixel_range)
    if train_colourfulness is not None:
        check.colour_range, check.colour_seen = colour_range(train_colourfulness)
    raw = check.layer_scores(val_features)
    check.scales = [float(max(np.quantile(raw[:, j], 0.99), 1e-9)) for j in range(raw.shape[1])]
    val_scores = check.scores(val_features, val_batch, val_colourfulness)
    finite = val_scores[val_scores < DEGENERATE_SCORE]
    check.threshold = float(margin * np.quantile(finite if len(finite) else val_scores, quantile))
    return check


def check_report(
    check: InputCheck,
    in_scores: np.ndarray,
    out_scores: dict[str, np.ndarray],
    *,
    not_pooled: tuple[str, ...] = (),
) -> dict:
    """AUROC of the score (own validation vs all others pooled, and per source) and refusal rates.

    Sources in ``not_pooled`` (images the model is meant to read, e.g. another chest X-ray
    data set for a chest X-ray model) are reported per source but left out of the pooled figures.
    """
    in_scores = np.asarray(in_scores, dtype=np.float64)
    pooled = np.concatenate([np.asarray(v, dtype=np.float64) for k, v in out_scores.items() if k not in not_pooled])
    y = np.r_[np.zeros(len(in_scores)), np.ones(len(pooled))].astype(int)
    per_source = {}
    for name, scores in out_scores.items():
        scores = np.asarray(scores, dtype=np.float64)
        y_s = np.r_[np.zeros(len(in_scores)), np.ones(len(scores))].astype(int)
        per_source[name] = {
            "pooled": name not in not_pooled,
            "n": len(scores),
            "auroc": round(binary_auc(y_s, np.r_[in_scores, scores]), 6),
            "refused": round(float((scores > check.threshold).mean()), 6),
        }
    return {
        "auroc": round(binary_auc(y, np.r_[in_scores, pooled]), 6),
        "own_validation_refused": round(float((in_scores > check.threshold).mean()), 6),
        "own_validation_n": len(in_scores),
        "other_refused": round(float((pooled > check.threshold).mean()), 6),
        "other_n": len(pooled),
        "per_source": per_source,
    }


# Synthetic images unlike any medical image -----------------------------------------


def _smooth_field(rng: np.random.Generator, size: int, channels: int, cells: int) -> np.ndarray:
    coarse = rng.uniform(0, 255, (cells, cells, channels)).astype(np.float32)
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return field.reshape(size, size, channels)


def synthetic_images(kind: str, n: int, *, seed: int = 0, size: int = 128) -> list[np.ndarray]:
    """Deterministic uint8 RGB images of one kind.

    ``uniform_noise``, ``gaussian_noise``, ``blank`` (one random grey or colour level,
    including black), ``saturated`` (white or nearly white, with a few dark pixels),
    ``photo_like`` (smooth colour fields with hard-edged shapes and texture, a stand-in
    for everyday photographs, which these machines do not hold).
    """
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        if kind == "uniform_noise":
            img = rng.integers(0, 256, (size, size, 3))
        elif kind == "gaussian_noise":
            img = rng.normal(rng.uniform(60, 200), rng.uniform(20, 70), (size, size, 3))
        elif kind == "blank":
            level = 0.0 if i % 4 == 0 else rng.uniform(0, 255)
            colour = np.full(3, level) if i % 2 == 0 else rng.uniform(0, 255, 3)
            img = np.broadcast_to(colour, (size, size, 3)).copy()
        elif kind == "saturated":
            img = np.full((size, size, 3), 255.0 - rng.uniform(0, 6))
            mask = rng.random((size, size)) < rng.uniform(0, 0.03)
            img[mask] = rng.uniform(0, 255)
        elif kind == "photo_like":
            img = _smooth_field(rng, size, 3, int(rng.integers(2, 6)))
            for _ in range(int(rng.integers(2, 7))):
                colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
                if rng.random() < 0.5:
                    p1 = tuple(int(v) for v in rng.integers(0, size, 2))
                    p2 = tuple(int(v) for v in rng.integers(0, size, 2))
                    cv2.rectangle(img, p1, p2, colour, -1)
                else:
                    centre = tuple(int(v) for v in rng.integers(0, size, 2))
                    cv2.circle(img, centre, int(rng.integers(5, size // 2)), colour, -1)
            img = img + _smooth_field(rng, size, 3, size // 4) * 0.15 - 20
        else:
            raise ValueError(f"unknown synthetic kind {kind!r}")
        images.append(np.clip(img, 0, 255).astype(np.uint8))
    return images


SYNTHETIC_KINDS = ("uniform_noise", "gaussian_noise", "blank", "saturated", "photo_like")


# Keras side ------------------------------------------------------------------------


def feature_layers(model) -> list[str]:
    """Layers whose pooled activations feed the check.

    MedPortal networks: the output of each residual stage (early stages see texture and
    intensity, late ones shape), of every member of a merged seed ensemble (``m<i>_``
    prefixes, see ``ensemble.merge_members``). Other models: their last pooled or
    flattened layer.
    """
    stages: dict[tuple[str, str], str] = {}
    for layer in model.layers:
        match = re.fullmatch(r"(m\d+_)?(s\d+)b\d+_out", layer.name)
        if match:
            stages[match.groups("")] = layer.name  # the last block of each stage wins
    if stages:
        return list(stages.values())
    for layer in reversed(model.layers):
        if layer.__class__.__name__ in ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten"):
            return [layer.name]
    raise ValueError("model has no feature layer for the input check")


def feature_model(model):
    """A Keras model giving the probabilities and every feature layer in one forward pass."""
    import keras  # noqa: PLC0415 - TensorFlow: loaded only once a model is used

    outputs = [model.get_layer(name).output for name in feature_layers(model)]
    return keras.Model(model.inputs, [model.outputs[0], *outputs])


def pool(activation: np.ndarray) -> np.ndarray:
    """Spatial mean and standard deviation per channel of an (n, h, w, c) map; (n, d) passes."""
    activation = np.asarray(activation, dtype=np.float64)
    if activation.ndim == 2:
        return activation
    flat = activation.reshape(len(activation), -1, activation.shape[-1])
    return np.concatenate([flat.mean(axis=1), flat.std(axis=1)], axis=1)


def features_and_proba(twin, batch: np.ndarray, *, batch_size: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
    """Raw softmax output and pooled features per layer for a model-input batch."""
    batch = np.asarray(batch, dtype=np.float32)
    n_layers = len(twin.outputs) - 1
    probas: list[np.ndarray] = []
    feats: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
    for start in range(0, len(batch), batch_size):
        out = twin([batch[start : start + batch_size]], training=False)
        probas.append(np.asarray(out[0], dtype=np.float64))
        for i, activation in enumerate(out[1:]):
            feats[i].append(pool(np.asarray(activation)))
    if not probas:
        width = int(twin.outputs[0].shape[-1])
        return np.zeros((0, width)), [np.zeros((0, 0)) for _ in range(n_layers)]
    return np.concatenate(probas), [np.concatenate(f) for f in feats]


def assess(twin, check: InputCheck, batch: np.ndarray, colourfulness=None) -> tuple[np.ndarray, np.ndarray]:
    """One forward pass through ``feature_model``: (raw softmax output, refuse mask) of a batch.

    ``twin`` may be the feature model itself or anything called like it (e.g. a compiled
    predict step) returning the probabilities followed by every feature layer;
    ``colourfulness`` is that of each image as decoded (see ``InputCheck.colour_side``).
    """
    out = twin(np.asarray(batch, dtype=np.float32), training=False)
    proba = np.asarray(out[0], dtype=np.float64)
    features = [pool(np.asarray(a)) for a in out[1:]]
    return proba, check.refuse(features, batch, colourfulness)
