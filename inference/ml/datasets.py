"""Loading the training data sets into memory as uint8 arrays.

Two layouts are supported: MedMNIST-style ``.npz`` files (``<split>_images`` /
``<split>_labels``) and directories with one sub-folder per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class ImageSet:
    """Images with integer labels; ``images`` may be a list when sizes differ."""

    images: list[np.ndarray] | np.ndarray
    labels: np.ndarray
    class_names: list[str]
    files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSet:
        indices = np.asarray(indices, dtype=int)
        if isinstance(self.images, np.ndarray):
            images: list[np.ndarray] | np.ndarray = self.images[indices]
        else:
            images = [self.images[i] for i in indices]
        files = [self.files[i] for i in indices] if self.files else []
        return ImageSet(images, self.labels[indices], list(self.class_names), files)

    def class_counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=len(self.class_names)).tolist()


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file into uint8 HxW (grayscale) or HxWx3 (RGB).

    Palette, alpha and 16-bit files are folded into one of those two forms so the
    rest of the pipeline only ever sees the shapes ``to_model_input`` accepts.
    """
    with Image.open(path) as img:
        img.load()
        if img.mode in ("L", "RGB"):
            return np.asarray(img, dtype=np.uint8).copy()
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(img, dtype=np.float64)
            lo, hi = float(arr.min()), float(arr.max())
            scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
            return np.round(scaled).astype(np.uint8)
        if img.mode in ("LA",):
            return np.asarray(img.convert("L"), dtype=np.uint8).copy()
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def load_npz(path: str | Path, split: str, class_names: Sequence[str] | None = None) -> ImageSet:
    """Load ``<split>_images`` and ``<split>_labels`` from a MedMNIST-style npz."""
    path = Path(path)
    with np.load(path) as data:
        img_key, lab_key = f"{split}_images", f"{split}_labels"
        if img_key not in data or lab_key not in data:
            available = sorted({k.rsplit("_", 1)[0] for k in data.files})
            raise KeyError(f"{path.name} has no split {split!r}; available: {available}")
        images = np.asarray(data[img_key])
        labels = np.asarray(data[lab_key]).reshape(-1).astype(np.int64)
    if images.dtype != np.uint8:
        raise ValueError(f"{path.name}: expected uint8 images, found {images.dtype}")
    if len(images) != len(labels):
        raise ValueError(f"{path.name}: {len(images)} images but {len(labels)} labels")
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    if class_names is None:
        class_names = [str(i) for i in range(n_classes)]
    elif len(labels) and labels.max() >= len(class_names):
        raise ValueError(f"{path.name}: label {labels.max()} but only {len(class_names)} classes")
    return ImageSet(images, labels, list(class_names), [])


def list_class_folder(root: str | Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names (sorted sub-folder names, as Keras orders them) and (file, label) pairs."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    class_names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_names:
        raise ValueError(f"{root} has no class sub-folders")
    entries: list[tuple[Path, int]] = []
    for label, name in enumerate(class_names):
        for file in sorted((root / name).iterdir()):
            if file.name.startswith(".") or file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            entries.append((file, label))
    return class_names, entries


def load_class_folder(
    root: str | Path,
    *,
    transform=None,
    class_names: Sequence[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> ImageSet:
    """Load every image below ``root/<class>/``.

    ``transform`` (e.g. ``to_model_input``) is applied per image while loading so a
    folder of large photographs never has to sit in memory at full resolution.
    ``class_names`` pins the expected label order; a mismatch is an error. ``limit``
    keeps a stratified sample of at most that many files, chosen before decoding.
    """
    found, entries = list_class_folder(root)
    if class_names is not None and list(class_names) != found:
        raise ValueError(f"{root}: class folders {found} do not match expected {list(class_names)}")
    if limit:
        keep = stratified_limit(np.array([label for _, label in entries]), limit, seed=seed)
        entries = [entries[i] for i in keep]
    images = []
    for file, _ in entries:
        pixels = read_image(file)
        images.append(transform(pixels) if transform is not None else pixels)
    labels = np.array([label for _, label in entries], dtype=np.int64)
    root = Path(root)
    files = [str(file.relative_to(root)) for file, _ in entries]
    stacked: list[np.ndarray] | np.ndarray = images
    if images and all(img.shape == images[0].shape for img in images):
        stacked = np.stack(images)
    return ImageSet(stacked, labels, found, files)


def stratified_split(
    labels: Sequence[int] | np.ndarray, *, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reproducible stratified split: (keep_indices, held_out_indices), both sorted.

    Each class contributes ``round(fraction * n_class)`` items (at least one when the
    class has two or more) chosen by a permutation from ``numpy.random.default_rng(seed)``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must be in (0, 1)")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        n_held = int(round(fraction * len(idx)))
        if len(idx) >= 2:
            n_held = min(max(n_held, 1), len(idx) - 1)
        held.extend(rng.permutation(idx)[:n_held].tolist())
    held_arr = np.array(sorted(held), dtype=int)
    keep = np.setdiff1d(np.arange(len(labels)), held_arr)
    return keep, held_arr


def near_identical_groups(
    images: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    threshold: float = 0.97,
    size: int = 32,
) -> np.ndarray:
    """Group id per image: same-class images whose 32x32 thumbnails correlate above ``threshold``.

    A perceptual fingerprint: each image is reduced to a small grayscale thumbnail,
    zero-mean/unit-variance normalised, and linked to every same-class image whose
    Pearson correlation exceeds the threshold; linked images form one group
    (connected components). It catches exact and re-sized copies and runs of adjacent
    MRI slices, which a random split would put on both sides of a validation boundary.
    """
    labels = np.asarray(labels)
    thumbs = np.empty((len(labels), size * size), dtype=np.float32)
    for i, img in enumerate(images):
        arr = np.asarray(img, dtype=np.float32)
        if arr.ndim == 3:
            arr = arr.mean(axis=2)
        small = cv2.resize(arr, (size, size), interpolation=cv2.INTER_AREA).ravel()
        small -= small.mean()
        norm = float(np.linalg.norm(small))
        thumbs[i] = small / norm if norm > 0 else small
    parent = np.arange(len(labels))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        corr = thumbs[idx] @ thumbs[idx].T
        rows, cols = np.nonzero(np.triu(corr > threshold, k=1))
        for a, b in zip(idx[rows], idx[cols], strict=True):
            ra, rb = find(int(a)), find(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(len(labels))], dtype=np.int64)


def metadata_groups(files: Sequence[str], metadata_csv: str | Path, column: str) -> np.ndarray:
    """Group id per file from a metadata CSV's ``column`` (matched on the file's base name).

    A file the CSV does not list is a group of its own.
    """
    import csv  # noqa: PLC0415 - only this loader reads CSV

    with open(metadata_csv, newline="") as fh:
        by_file = {row["file"]: row[column] for row in csv.DictReader(fh)}
    ids: dict[str, int] = {}
    out = np.empty(len(files), dtype=np.int64)
    for i, file in enumerate(files):
        key = by_file.get(Path(file).name, f"\0{file}")
        out[i] = ids.setdefault(key, len(ids))
    return out


def filename_groups(files: Sequence[str], pattern: str) -> np.ndarray:
    """Group id per file: the first group the regular expression captures in its base name.

    A name the pattern does not match is a group of its own.
    """
    import re  # noqa: PLC0415 - only this grouping needs it

    regex = re.compile(pattern)
    ids: dict[str, int] = {}
    out = np.empty(len(files), dtype=np.int64)
    for i, file in enumerate(files):
        match = regex.match(Path(file).name)
        key = match.group(1) if match else f"\0{file}"
        out[i] = ids.setdefault(key, len(ids))
    return out


def grouped_stratified_split(
    labels: Sequence[int] | np.ndarray, groups: Sequence[int] | np.ndarray, *, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Like ``stratified_split``, but whole groups move together: no group spans both sides.

    Groups are visited in a seeded random order per class and held out until the class
    reaches ``round(fraction * n_class)`` images (a group never overshoots by more than
    its own size).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must be in (0, 1)")
    labels, groups = np.asarray(labels), np.asarray(groups)
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        target = int(round(fraction * len(idx)))
        class_groups = np.unique(groups[idx])
        taken = 0
        for group in rng.permutation(class_groups):
            if taken >= target:
                break
            members = idx[groups[idx] == group]
            held.extend(members.tolist())
            taken += len(members)
    held_arr = np.array(sorted(held), dtype=int)
    keep = np.setdiff1d(np.arange(len(labels)), held_arr)
    return keep, held_arr


def stratified_limit(labels: np.ndarray, limit: int, *, seed: int) -> np.ndarray:
    """Indices of at most ``limit`` items keeping every class represented (for smoke runs)."""
    labels = np.asarray(labels)
    if limit >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = max(1, limit // len(classes))
    chosen: list[int] = []
    for cls in classes:
        idx = np.flatnonzero(labels == cls)
        chosen.extend(rng.permutation(idx)[:per_class].tolist())
    return np.array(sorted(chosen[: max(limit, len(classes))]), dtype=int)
